//! The application's callables behind the core's callback traits: a push consumer's listener
//! ([`MessageListener`]) and a producer's transaction checker ([`TransactionChecker`]).
//!
//! `orbitmq._callbacks.adapt` wraps the callable once (a coroutine function is run on the
//! event loop the client was made in, or on a background loop; an exception or a wrong return
//! value is logged on the `orbitmq` logger and counts as the failure value). Each call runs on
//! a blocking thread of the runtime, so a slow listener never stalls the runtime's workers.

use std::sync::Arc;

use orbitmq_core::client::{self as core, MessageListener, TransactionChecker};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::message::{ConsumeResult, MessageView, TransactionResolution};

static ADAPT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `callable`, adapted to always answer with a value of `failure`'s type.
fn adapt<'py>(
    callable: &Bound<'py, PyAny>,
    failure: &Bound<'py, PyAny>,
) -> PyResult<Arc<Py<PyAny>>> {
    let py = callable.py();
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop").ok();
    let adapt = ADAPT.import(py, "orbitmq._callbacks", "adapt")?;
    Ok(Arc::new(adapt.call1((callable, event_loop, failure))?.unbind()))
}

/// Calls the adapted callable with `message` on a blocking thread; `None` if Python is gone.
async fn call<T>(f: &Arc<Py<PyAny>>, message: core::MessageView) -> Option<T>
where
    T: for<'a, 'py> FromPyObject<'a, 'py> + Send + 'static,
{
    let f = Arc::clone(f);
    let run = move || {
        Python::try_attach(|py| {
            f.call1(py, (MessageView { inner: message },))
                .ok()
                .and_then(|r| r.extract::<T>(py).ok())
        })
        .flatten()
    };
    tokio::task::spawn_blocking(run).await.ok().flatten()
}

/// A Python listener.
pub(crate) struct Listener(Arc<Py<PyAny>>);

impl Listener {
    pub(crate) fn new(callable: &Bound<'_, PyAny>) -> PyResult<Listener> {
        let failure = Bound::new(callable.py(), ConsumeResult::FAILURE)?.into_any();
        adapt(callable, &failure).map(Listener)
    }
}

#[async_trait::async_trait]
impl MessageListener for Listener {
    async fn consume(&self, message: core::MessageView) -> core::ConsumeResult {
        call::<ConsumeResult>(&self.0, message)
            .await
            .map_or(core::ConsumeResult::Failure, Into::into)
    }
}

/// A Python transaction checker.
pub(crate) struct Checker(Arc<Py<PyAny>>);

impl Checker {
    pub(crate) fn new(callable: &Bound<'_, PyAny>) -> PyResult<Checker> {
        let unknown = Bound::new(callable.py(), TransactionResolution::UNKNOWN)?.into_any();
        adapt(callable, &unknown).map(Checker)
    }
}

#[async_trait::async_trait]
impl TransactionChecker for Checker {
    async fn check(&self, message: core::MessageView) -> core::TransactionResolution {
        call::<TransactionResolution>(&self.0, message)
            .await
            .map_or(core::TransactionResolution::Unknown, Into::into)
    }
}
