//! `SimpleConsumer`, `PushConsumer` and `PullConsumer`: each method a conversion and a call
//! of the core's, blocking (GIL released) or `_async` (an awaitable).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use orbitmq_core::client::{self as core, OffsetStore};
use pyo3::prelude::*;

use crate::callback::Listener;
use crate::config::{ClientConfig, TlsArg, resolve, seconds};
use crate::error::{bad_arg, to_py};
use crate::lifecycle::client_methods;
use crate::message::{ConsumerModel, Filter, MessageQueue, MessageView, views};
use crate::runtime::{ClientLease, awaitable, wait};

/// `subscriptions=`: topic to filter (a `FilterExpression` or a tag expression string).
type Subscriptions = Option<HashMap<String, Filter>>;

fn subscriptions(s: Subscriptions) -> Vec<(String, core::FilterExpression)> {
    let mut v: Vec<_> =
        s.unwrap_or_default().into_iter().map(|(t, f)| (t, f.into_core())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The number `n` as a `u32` argument named `name`.
fn count(name: &str, n: i64) -> PyResult<u32> {
    u32::try_from(n).map_err(|_| bad_arg(format!("{name} must be from 0 to 2^32-1, not {n}")))
}

/// Receives and acknowledges messages of a consumer group; you decide when.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct SimpleConsumer {
    inner: core::SimpleConsumer,
    lease: ClientLease,
}

client_methods!(SimpleConsumer, "simple consumer", {
    #[new]
    #[pyo3(signature = (config = None, *, endpoints = None, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None, group, subscriptions = None, await_duration = 20.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<ClientConfig>,
        endpoints: Option<String>,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
        group: String,
        subscriptions: Subscriptions,
        await_duration: f64,
    ) -> PyResult<SimpleConsumer> {
        crate::logging::refresh_level(py);
        let config = resolve(config, endpoints, namespace, credentials, request_timeout, tls)?;
        let await_duration = seconds("await_duration", await_duration)?;
        let (lease, handle) = ClientLease::new()?;
        let mut b = core::SimpleConsumer::builder(config, group)
            .await_duration(await_duration)
            .runtime(handle);
        for (t, f) in self::subscriptions(subscriptions) {
            b = b.subscribe(t, f);
        }
        let inner = b.build().map_err(to_py)?;
        let c = inner.clone();
        lease.on_exit(move || {
            let c = c.clone();
            async move { c.shutdown().await }
        });
        Ok(SimpleConsumer { inner, lease })
    }

    /// Subscribes to `topic` (or changes its filter).
    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe(&self, py: Python<'_>, topic: &str, filter: Filter) -> PyResult<()> {
        let h = self.lease.handle("simple consumer")?;
        wait(py, &h, self.inner.subscribe(topic, filter.into_core()))
    }

    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        filter: Filter,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("simple consumer")?;
        let (c, f) = (self.inner.clone(), filter.into_core());
        awaitable(py, async move { c.subscribe(&topic, f).await })
    }

    /// Drops the subscription of `topic`.
    fn unsubscribe(&self, topic: &str) -> PyResult<()> {
        self.lease.handle("simple consumer")?;
        self.inner.unsubscribe(topic);
        Ok(())
    }

    /// Receives up to `max_messages` (1 to 32), each invisible to the group for
    /// `invisible_duration` seconds unless acknowledged.
    #[pyo3(signature = (max_messages = 16, invisible_duration = 30.0))]
    fn receive(
        &self,
        py: Python<'_>,
        max_messages: i64,
        invisible_duration: f64,
    ) -> PyResult<Vec<MessageView>> {
        let (n, d) = (
            count("max_messages", max_messages)?,
            seconds("invisible_duration", invisible_duration)?,
        );
        wait(py, &self.lease.handle("simple consumer")?, self.inner.receive(n, d)).map(views)
    }

    #[pyo3(signature = (max_messages = 16, invisible_duration = 30.0))]
    fn receive_async<'py>(
        &self,
        py: Python<'py>,
        max_messages: i64,
        invisible_duration: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (n, d) = (
            count("max_messages", max_messages)?,
            seconds("invisible_duration", invisible_duration)?,
        );
        self.lease.handle("simple consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.receive(n, d).await.map(views) })
    }

    /// Acknowledges `message`: consumed, not to be redelivered.
    fn ack(&self, py: Python<'_>, message: PyRef<'_, MessageView>) -> PyResult<()> {
        let m = message.inner.clone();
        drop(message);
        wait(py, &self.lease.handle("simple consumer")?, self.inner.ack(&m))
    }

    fn ack_async<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, MessageView>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("simple consumer")?;
        let (c, m) = (self.inner.clone(), message.borrow().inner.clone());
        awaitable(py, async move { c.ack(&m).await })
    }

    /// Makes `message` invisible for `duration` seconds from now; returns its new receipt
    /// handle (also stored in `message`).
    fn change_invisible_duration(
        &self,
        py: Python<'_>,
        message: &Bound<'_, MessageView>,
        duration: f64,
    ) -> PyResult<String> {
        let d = seconds("duration", duration)?;
        let mut m = message.borrow().inner.clone();
        let h = self.lease.handle("simple consumer")?;
        let handle = wait(py, &h, self.inner.change_invisible_duration(&mut m, d))?;
        message.borrow_mut().inner.receipt_handle.clone_from(&handle);
        Ok(handle)
    }

    fn change_invisible_duration_async<'py>(
        &self,
        py: Python<'py>,
        message: Py<MessageView>,
        duration: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = seconds("duration", duration)?;
        self.lease.handle("simple consumer")?;
        let (c, mut m) = (self.inner.clone(), message.borrow(py).inner.clone());
        awaitable(py, async move {
            let handle = c.change_invisible_duration(&mut m, d).await?;
            Python::try_attach(|py| {
                message.borrow_mut(py).inner.receipt_handle.clone_from(&handle);
            });
            Ok(handle)
        })
    }

    /// The group.
    #[getter]
    fn group(&self) -> String {
        self.inner.group()
    }
});

/// Hands each message of a group's subscriptions to a listener.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct PushConsumer {
    inner: core::PushConsumer,
    lease: ClientLease,
}

client_methods!(PushConsumer, "push consumer", {
    #[new]
    #[pyo3(signature = (config = None, *, endpoints = None, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None, group, subscriptions = None, listener, model = ConsumerModel::CLUSTERING, consumption_threads = 20, max_cached_messages = 1024, offset_store = None, instance_name = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<ClientConfig>,
        endpoints: Option<String>,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
        group: String,
        subscriptions: Subscriptions,
        listener: &Bound<'_, PyAny>,
        model: ConsumerModel,
        consumption_threads: usize,
        max_cached_messages: usize,
        offset_store: Option<PathBuf>,
        instance_name: Option<String>,
    ) -> PyResult<PushConsumer> {
        crate::logging::refresh_level(py);
        let config = resolve(config, endpoints, namespace, credentials, request_timeout, tls)?;
        let listener = Arc::new(Listener::new(listener)?);
        let (lease, handle) = ClientLease::new()?;
        let mut b = core::PushConsumer::builder(config, group)
            .listener(listener)
            .model(model.into())
            .consumption_threads(consumption_threads)
            .max_cached_messages(max_cached_messages)
            .runtime(handle);
        for (t, f) in self::subscriptions(subscriptions) {
            b = b.subscribe(t, f);
        }
        if let Some(path) = offset_store {
            b = b.offset_store(OffsetStore::Local(path));
        }
        if let Some(name) = instance_name {
            b = b.instance_name(name);
        }
        let inner = b.build().map_err(to_py)?;
        let c = inner.clone();
        lease.on_exit(move || {
            let c = c.clone();
            async move { c.shutdown().await }
        });
        Ok(PushConsumer { inner, lease })
    }

    /// Subscribes to `topic` (or changes its filter); effective at once.
    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe(&self, py: Python<'_>, topic: &str, filter: Filter) -> PyResult<()> {
        let h = self.lease.handle("push consumer")?;
        wait(py, &h, self.inner.subscribe(topic, filter.into_core()))
    }

    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        filter: Filter,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("push consumer")?;
        let (c, f) = (self.inner.clone(), filter.into_core());
        awaitable(py, async move { c.subscribe(&topic, f).await })
    }

    /// The group.
    #[getter]
    fn group(&self) -> String {
        self.inner.group()
    }
});

/// Reads message queues by offset: subscribe (the broker assigns queues) or assign them.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct PullConsumer {
    inner: core::PullConsumer,
    lease: ClientLease,
}

fn queues(list: Vec<MessageQueue>) -> Vec<core::MessageQueue> {
    list.into_iter().map(|q| q.inner).collect()
}

fn wrap_queues(list: Vec<core::MessageQueue>) -> Vec<MessageQueue> {
    list.into_iter().map(|inner| MessageQueue { inner }).collect()
}

client_methods!(PullConsumer, "pull consumer", {
    #[new]
    #[pyo3(signature = (config = None, *, endpoints = None, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None, group, subscriptions = None, offset_store = None, auto_commit_interval = 5.0, max_batch = 32))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: Option<ClientConfig>,
        endpoints: Option<String>,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
        group: String,
        subscriptions: Subscriptions,
        offset_store: Option<PathBuf>,
        auto_commit_interval: f64,
        max_batch: i64,
    ) -> PyResult<PullConsumer> {
        crate::logging::refresh_level(py);
        let config = resolve(config, endpoints, namespace, credentials, request_timeout, tls)?;
        // "broker" (the default) or a directory for a local offset store.
        let store = match offset_store {
            None => OffsetStore::Broker,
            Some(p) if p.as_os_str() == "broker" => OffsetStore::Broker,
            Some(p) => OffsetStore::Local(p),
        };
        let interval = seconds("auto_commit_interval", auto_commit_interval)?;
        let max_batch = count("max_batch", max_batch)?;
        let (lease, handle) = ClientLease::new()?;
        let mut b = core::PullConsumer::builder(config, group)
            .offset_store(store)
            .auto_commit_interval(interval)
            .max_batch(max_batch)
            .runtime(handle);
        for (t, f) in self::subscriptions(subscriptions) {
            b = b.subscribe(t, f);
        }
        let inner = b.build().map_err(to_py)?;
        let c = inner.clone();
        lease.on_exit(move || {
            let c = c.clone();
            async move { c.shutdown().await }
        });
        Ok(PullConsumer { inner, lease })
    }

    /// Subscribes to `topic`: the broker assigns this consumer a share of its queues.
    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe(&self, py: Python<'_>, topic: &str, filter: Filter) -> PyResult<()> {
        let h = self.lease.handle("pull consumer")?;
        wait(py, &h, self.inner.subscribe(topic, filter.into_core()))
    }

    #[pyo3(signature = (topic, filter = Filter::Tag("*".to_owned())))]
    fn subscribe_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        filter: Filter,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let (c, f) = (self.inner.clone(), filter.into_core());
        awaitable(py, async move { c.subscribe(&topic, f).await })
    }

    /// Reads exactly `queues` from now on, with no rebalancing.
    fn assign(&self, py: Python<'_>, queues: Vec<MessageQueue>) -> PyResult<()> {
        let h = self.lease.handle("pull consumer")?;
        wait(py, &h, self.inner.assign(self::queues(queues)))
    }

    fn assign_async<'py>(
        &self,
        py: Python<'py>,
        queues: Vec<MessageQueue>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let (c, q) = (self.inner.clone(), self::queues(queues));
        awaitable(py, async move { c.assign(q).await })
    }

    /// The queues this consumer reads now.
    fn assignment(&self) -> Vec<MessageQueue> {
        wrap_queues(self.inner.assignment())
    }

    /// The readable queues of `topic`.
    fn queues(&self, py: Python<'_>, topic: &str) -> PyResult<Vec<MessageQueue>> {
        let h = self.lease.handle("pull consumer")?;
        wait(py, &h, self.inner.queues(topic)).map(wrap_queues)
    }

    fn queues_async<'py>(&self, py: Python<'py>, topic: String) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.queues(&topic).await.map(wrap_queues) })
    }

    /// The next offset read from `queue` (`None` before its first poll).
    fn position(&self, queue: &MessageQueue) -> Option<i64> {
        self.inner.position(&queue.inner)
    }

    /// Messages from this consumer's positions on; waits up to `timeout` seconds for new ones.
    #[pyo3(signature = (timeout = 1.0))]
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<MessageView>> {
        let t = seconds("timeout", timeout)?;
        wait(py, &self.lease.handle("pull consumer")?, self.inner.poll(t)).map(views)
    }

    #[pyo3(signature = (timeout = 1.0))]
    fn poll_async<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let t = seconds("timeout", timeout)?;
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.poll(t).await.map(views) })
    }

    /// Stores every position that moved in the offset store.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, &self.lease.handle("pull consumer")?, self.inner.commit())
    }

    fn commit_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.commit().await })
    }

    /// Reads `queue` from `offset` on (no network call).
    fn seek(&self, queue: &MessageQueue, offset: i64) -> PyResult<()> {
        self.lease.handle("pull consumer")?;
        self.inner.seek(&queue.inner, offset).map_err(to_py)
    }

    /// Reads every queue of `topic` this consumer reads from its first message.
    fn seek_to_beginning(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        wait(py, &self.lease.handle("pull consumer")?, self.inner.seek_to_beginning(topic))
    }

    fn seek_to_beginning_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.seek_to_beginning(&topic).await })
    }

    /// Reads every queue of `topic` this consumer reads from its end.
    fn seek_to_end(&self, py: Python<'_>, topic: &str) -> PyResult<()> {
        wait(py, &self.lease.handle("pull consumer")?, self.inner.seek_to_end(topic))
    }

    fn seek_to_end_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.seek_to_end(&topic).await })
    }

    /// Reads every queue of `topic` from the first message stored at or after
    /// `timestamp_ms` (ms since the epoch).
    fn seek_to_timestamp(&self, py: Python<'_>, topic: &str, timestamp_ms: i64) -> PyResult<()> {
        let h = self.lease.handle("pull consumer")?;
        wait(py, &h, self.inner.seek_to_timestamp(topic, timestamp_ms))
    }

    fn seek_to_timestamp_async<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        timestamp_ms: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("pull consumer")?;
        let c = self.inner.clone();
        awaitable(py, async move { c.seek_to_timestamp(&topic, timestamp_ms).await })
    }

    /// The group.
    #[getter]
    fn group(&self) -> String {
        self.inner.group()
    }
});
