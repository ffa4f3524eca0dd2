//! `Producer` and `Transaction`: each method a conversion and a call of the core's, blocking
//! (GIL released) or `_async` (an awaitable).

use std::sync::Arc;

use orbitmq_core::client::{self as core, Error};
use pyo3::prelude::*;

use crate::callback::Checker;
use crate::config::{ClientConfig, TlsArg, resolve};
use crate::lifecycle::client_methods;
use crate::message::{Message, SendReceipt, receipts};
use crate::runtime::{ClientLease, awaitable, wait};

/// Sends messages.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct Producer {
    inner: core::Producer,
    lease: ClientLease,
}

fn messages(list: Vec<Bound<'_, Message>>) -> Vec<core::Message> {
    list.into_iter().map(|m| m.get().inner.clone()).collect()
}

client_methods!(Producer, "producer", {
    #[new]
    #[pyo3(signature = (config = None, *, endpoints = None, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None, topics = Vec::new(), checker = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<ClientConfig>,
        endpoints: Option<String>,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
        topics: Vec<String>,
        checker: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Producer> {
        crate::logging::refresh_level(py);
        let config = resolve(config, endpoints, namespace, credentials, request_timeout, tls)?;
        let (lease, handle) = ClientLease::new()?;
        let mut b = core::Producer::builder(config).topics(topics).runtime(handle);
        if let Some(c) = checker {
            b = b.transaction_checker(Arc::new(Checker::new(&c)?));
        }
        let inner = b.build().map_err(crate::error::to_py)?;
        let p = inner.clone();
        lease.on_exit(move || {
            let p = p.clone();
            async move { p.shutdown().await }
        });
        Ok(Producer { inner, lease })
    }

    /// Sends one message.
    fn send(&self, py: Python<'_>, message: &Bound<'_, Message>) -> PyResult<SendReceipt> {
        let m = message.get().inner.clone();
        let r = wait(py, &self.lease.handle("producer")?, self.inner.send(m))?;
        Ok(SendReceipt { inner: r })
    }

    fn send_async<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, Message>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("producer")?;
        let (p, m) = (self.inner.clone(), message.get().inner.clone());
        awaitable(py, async move { p.send(m).await.map(|inner| SendReceipt { inner }) })
    }

    /// Sends messages of one topic and type in one request: all are stored or none.
    fn send_batch(
        &self,
        py: Python<'_>,
        messages: Vec<Bound<'_, Message>>,
    ) -> PyResult<Vec<SendReceipt>> {
        let m = self::messages(messages);
        wait(py, &self.lease.handle("producer")?, self.inner.send_batch(m)).map(receipts)
    }

    fn send_batch_async<'py>(
        &self,
        py: Python<'py>,
        messages: Vec<Bound<'py, Message>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("producer")?;
        let (p, m) = (self.inner.clone(), self::messages(messages));
        awaitable(py, async move { p.send_batch(m).await.map(receipts) })
    }

    /// Recalls a delay message before it is delivered; returns its message id.
    fn recall(&self, py: Python<'_>, topic: &str, recall_handle: &str) -> PyResult<String> {
        wait(py, &self.lease.handle("producer")?, self.inner.recall(topic, recall_handle))
    }

    fn recall_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        recall_handle: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("producer")?;
        let p = self.inner.clone();
        awaitable(py, async move { p.recall(&topic, &recall_handle).await })
    }

    /// Starts a transaction (the producer needs a `checker`).
    fn begin_transaction(slf: &Bound<'_, Self>) -> PyResult<Transaction> {
        slf.get().lease.handle("producer")?;
        let tx = slf.get().inner.begin_transaction().map_err(crate::error::to_py)?;
        Ok(Transaction {
            producer: slf.clone().unbind(),
            tx: Arc::new(tokio::sync::Mutex::new(Some(tx))),
        })
    }

    /// The client id the servers know this producer by.
    #[getter]
    fn client_id(&self) -> String {
        self.inner.client_id()
    }
});

/// A transaction: its messages are delivered on `commit`, dropped on `rollback`.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct Transaction {
    producer: Py<Producer>,
    tx: Arc<tokio::sync::Mutex<Option<core::Transaction>>>,
}

/// The transaction, or `PRECONDITION_FAILED` once it has ended.
fn open(tx: &mut Option<core::Transaction>) -> Result<&mut core::Transaction, Error> {
    tx.as_mut().ok_or_else(ended)
}

fn ended() -> Error {
    Error::new(core::ErrorKind::PreconditionFailed, "the transaction was committed or rolled back")
}

async fn send_in(
    tx: Arc<tokio::sync::Mutex<Option<core::Transaction>>>,
    m: core::Message,
) -> Result<SendReceipt, Error> {
    open(&mut *tx.lock().await)?.send(m).await.map(|inner| SendReceipt { inner })
}

async fn end(
    tx: Arc<tokio::sync::Mutex<Option<core::Transaction>>>,
    commit: bool,
) -> Result<(), Error> {
    let tx = tx.lock().await.take().ok_or_else(ended)?;
    if commit { tx.commit().await } else { tx.rollback().await }
}

#[pymethods]
impl Transaction {
    /// Sends `message` as part of the transaction.
    fn send(&self, py: Python<'_>, message: &Bound<'_, Message>) -> PyResult<SendReceipt> {
        let h = self.producer.get().lease.handle("producer")?;
        wait(py, &h, send_in(Arc::clone(&self.tx), message.get().inner.clone()))
    }

    fn send_async<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, Message>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.producer.get().lease.handle("producer")?;
        awaitable(py, send_in(Arc::clone(&self.tx), message.get().inner.clone()))
    }

    /// Delivers every message sent through the transaction.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.producer.get().lease.handle("producer")?;
        wait(py, &h, end(Arc::clone(&self.tx), true))
    }

    fn commit_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.producer.get().lease.handle("producer")?;
        awaitable(py, end(Arc::clone(&self.tx), true))
    }

    /// Drops every message sent through the transaction.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.producer.get().lease.handle("producer")?;
        wait(py, &h, end(Arc::clone(&self.tx), false))
    }

    fn rollback_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.producer.get().lease.handle("producer")?;
        awaitable(py, end(Arc::clone(&self.tx), false))
    }
}
