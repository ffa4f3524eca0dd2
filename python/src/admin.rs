//! `Admin`: topics, groups and consumer progress. Results are plain dicts, field for field the
//! core's records.

use orbitmq_core::client::{self as core, Admin as CoreAdmin, Error, GroupOptions, TopicConfig};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::{ClientConfig, TlsArg, resolve};
use crate::error::to_py;
use crate::runtime::{ClientLease, awaitable, wait};

/// A dict of a core record's fields (`$wrap` converts with the GIL, after an await).
macro_rules! dict_of {
    ($wrap:ident, $ty:ty, [$($field:ident),*] $(, $nested:ident: $inner:ident)?) => {
        struct $wrap($ty);
        impl<'py> IntoPyObject<'py> for $wrap {
            type Target = PyDict;
            type Output = Bound<'py, PyDict>;
            type Error = PyErr;
            fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                $(d.set_item(stringify!($field), self.0.$field)?;)*
                $(d.set_item(
                    stringify!($nested),
                    self.0.$nested.into_iter().map($inner).collect::<Vec<_>>(),
                )?;)?
                Ok(d)
            }
        }
    };
}

dict_of!(Topic, TopicConfig, [name, read_queues, write_queues, perm, message_type]);
dict_of!(
    QueueStatus,
    core::QueueStatus,
    [broker_name, queue_id, min_offset, max_offset, last_store_timestamp]
);
dict_of!(TopicStatus, core::TopicStatus, [topic], queues: QueueStatus);
dict_of!(Group, core::GroupConfig, [name, max_delivery_attempts, fifo, consume_from]);
dict_of!(
    QueueProgress,
    core::QueueProgress,
    [topic, broker_name, queue_id, broker_offset, consumer_offset, lag]
);
dict_of!(Progress, core::ConsumerProgress, [group, total_lag, dead_letters, inflight], queues: QueueProgress);

fn topics(v: Vec<TopicConfig>) -> Vec<Topic> {
    v.into_iter().map(Topic).collect()
}

fn groups(v: Vec<core::GroupConfig>) -> Vec<Group> {
    v.into_iter().map(Group).collect()
}

fn topic_config(
    name: String,
    read_queues: u32,
    write_queues: u32,
    perm: u32,
    message_type: String,
) -> TopicConfig {
    TopicConfig { read_queues, write_queues, perm, message_type, ..TopicConfig::new(name) }
}

/// Creates, lists and deletes topics and groups; reads offsets and lag.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct Admin {
    inner: CoreAdmin,
    lease: ClientLease,
}

#[pymethods]
impl Admin {
    #[new]
    #[pyo3(signature = (config = None, *, endpoints = None, namespace = String::new(), credentials = None, request_timeout = 3.0, tls = None))]
    fn new(
        config: Option<ClientConfig>,
        endpoints: Option<String>,
        namespace: String,
        credentials: Option<(String, String)>,
        request_timeout: f64,
        tls: Option<TlsArg>,
    ) -> PyResult<Admin> {
        let config = resolve(config, endpoints, namespace, credentials, request_timeout, tls)?;
        let (lease, _) = ClientLease::new()?;
        Ok(Admin { inner: CoreAdmin::new(config).map_err(to_py)?, lease })
    }

    /// Creates a topic (`message_type`: NORMAL, FIFO, DELAY, TRANSACTION or MIXED).
    #[pyo3(signature = (name, *, read_queues = 8, write_queues = 8, perm = 6, message_type = "NORMAL".to_owned()))]
    fn create_topic<'py>(
        &self,
        py: Python<'py>,
        name: String,
        read_queues: u32,
        write_queues: u32,
        perm: u32,
        message_type: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = topic_config(name, read_queues, write_queues, perm, message_type);
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.create_topic(t)).and_then(|t| Topic(t).into_pyobject(py))
    }

    #[pyo3(signature = (name, *, read_queues = 8, write_queues = 8, perm = 6, message_type = "NORMAL".to_owned()))]
    fn create_topic_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        read_queues: u32,
        write_queues: u32,
        perm: u32,
        message_type: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = topic_config(name, read_queues, write_queues, perm, message_type);
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.create_topic(t).await.map(Topic) })
    }

    /// Deletes a topic.
    fn delete_topic(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        wait(py, &self.lease.handle("admin client")?, self.inner.delete_topic(name))
    }

    fn delete_topic_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.delete_topic(&name).await })
    }

    /// Every topic (with `include_system`, the system topics too).
    #[pyo3(signature = (include_system = false))]
    fn list_topics<'py>(
        &self,
        py: Python<'py>,
        include_system: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.list_topics(include_system))
            .and_then(|t| topics(t).into_pyobject(py))
    }

    #[pyo3(signature = (include_system = false))]
    fn list_topics_async<'py>(
        &self,
        py: Python<'py>,
        include_system: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.list_topics(include_system).await.map(topics) })
    }

    /// A topic's queues and their min/max offsets.
    fn topic_status<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.topic_status(name)).and_then(|s| TopicStatus(s).into_pyobject(py))
    }

    fn topic_status_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.topic_status(&name).await.map(TopicStatus) })
    }

    /// Creates (or updates) a consumer group; returns its settings.
    #[pyo3(signature = (name, *, fifo = None, max_delivery_attempts = None, consume_from = None))]
    fn create_group<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        fifo: Option<bool>,
        max_delivery_attempts: Option<u32>,
        consume_from: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let o = GroupOptions { fifo, max_delivery_attempts, consume_from };
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.create_group(name, o))
            .and_then(|g| Group(g.group).into_pyobject(py))
    }

    #[pyo3(signature = (name, *, fifo = None, max_delivery_attempts = None, consume_from = None))]
    fn create_group_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        fifo: Option<bool>,
        max_delivery_attempts: Option<u32>,
        consume_from: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = GroupOptions { fifo, max_delivery_attempts, consume_from };
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.create_group(&name, o).await.map(|g| Group(g.group)) })
    }

    /// Deletes a consumer group.
    fn delete_group(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        wait(py, &self.lease.handle("admin client")?, self.inner.delete_group(name))
    }

    fn delete_group_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.delete_group(&name).await })
    }

    /// Every consumer group.
    fn list_groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.list_groups()).and_then(|g| groups(g).into_pyobject(py))
    }

    fn list_groups_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(py, async move { a.list_groups().await.map(groups) })
    }

    /// A group's offsets and lag per queue, on `topic` or every topic it has offsets on.
    #[pyo3(signature = (group, topic = None))]
    fn consumer_progress<'py>(
        &self,
        py: Python<'py>,
        group: &str,
        topic: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let h = self.lease.handle("admin client")?;
        wait(py, &h, self.inner.consumer_progress(group, topic))
            .and_then(|p| Progress(p).into_pyobject(py))
    }

    #[pyo3(signature = (group, topic = None))]
    fn consumer_progress_async<'py>(
        &self,
        py: Python<'py>,
        group: String,
        topic: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lease.handle("admin client")?;
        let a = self.inner.clone();
        awaitable(
            py,
            async move { a.consumer_progress(&group, topic.as_deref()).await.map(Progress) },
        )
    }

    /// Releases the client; later calls raise `ClosedError`.
    fn close(&self) {
        drop(self.lease.take());
    }

    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.lease.take();
        awaitable(py, async move {
            drop(lease);
            Ok::<(), Error>(())
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __aenter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
        let py = slf.py();
        let me = slf.unbind();
        awaitable(py, async move { Ok::<_, Error>(me) })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close_async(py)
    }
}
