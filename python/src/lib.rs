//! `orbitmq._orbitmq`: the Rust client SDK (`orbitmq_core::client`) for Python. The public
//! package (`python/orbitmq/`) re-exports it.
//!
//! A thin layer (`STYLE.md` §3): each method converts its arguments, calls the core and
//! converts the result, either blocking with the GIL released or as an awaitable (`_async`).
//! The package owns its Tokio runtime and shuts it down before the interpreter finalises
//! (`runtime.rs`); errors are one exception class per `ErrorKind` (`error.rs`); the SDK's
//! `tracing` events go to Python's `logging` (`logging.rs`).

mod admin;
mod bridge;
mod callback;
mod config;
mod consumer;
mod error;
mod lifecycle;
mod logging;
mod message;
mod producer;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _orbitmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    m.add_class::<config::ClientConfig>()?;
    m.add_class::<message::Message>()?;
    m.add_class::<message::SendReceipt>()?;
    m.add_class::<message::MessageView>()?;
    m.add_class::<message::MessageQueue>()?;
    m.add_class::<message::FilterExpression>()?;
    m.add_class::<message::ConsumeResult>()?;
    m.add_class::<message::ConsumerModel>()?;
    m.add_class::<message::TransactionResolution>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::Transaction>()?;
    m.add_class::<consumer::SimpleConsumer>()?;
    m.add_class::<consumer::PushConsumer>()?;
    m.add_class::<consumer::PullConsumer>()?;
    m.add_class::<admin::Admin>()?;
    m.add_class::<bridge::Completer>()?;
    m.add_function(wrap_pyfunction!(runtime::shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::runtime_running, m)?)?;
    m.add_function(wrap_pyfunction!(error::error_kinds, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
