//! The plain records: `Message` (what is sent), `SendReceipt`, `MessageView` (what is
//! received), `MessageQueue`, `FilterExpression` and the small enums. Field for field the
//! core's; times are milliseconds since the epoch, `body` is `bytes`.

use std::collections::HashMap;

use orbitmq_core::client as core;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::seconds;
use crate::error::bad_arg;

/// A body: `bytes` (or `bytearray`, `memoryview`), or `str` sent as UTF-8.
#[derive(FromPyObject)]
pub(crate) enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

/// A message to send.
#[pyclass(frozen, module = "orbitmq", from_py_object)]
#[derive(Clone)]
pub(crate) struct Message {
    pub(crate) inner: core::Message,
}

#[pymethods]
impl Message {
    #[new]
    #[pyo3(signature = (topic, body, tag = None, keys = Vec::new(), properties = None, message_group = None, delivery_timestamp = None, *, delay = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        topic: String,
        body: Body,
        tag: Option<String>,
        keys: Vec<String>,
        properties: Option<HashMap<String, String>>,
        message_group: Option<String>,
        delivery_timestamp: Option<i64>,
        delay: Option<f64>,
    ) -> PyResult<Message> {
        let body = match body {
            Body::Text(s) => s.into_bytes(),
            Body::Bytes(b) => b,
        };
        let mut b = core::Message::builder(topic).body(body).keys(keys);
        if let Some(tag) = tag {
            b = b.tag(tag);
        }
        for (k, v) in properties.unwrap_or_default() {
            b = b.property(k, v);
        }
        if let Some(g) = message_group {
            b = b.message_group(g);
        }
        match (delivery_timestamp, delay) {
            (Some(_), Some(_)) => {
                return Err(bad_arg("give delivery_timestamp or delay, not both"));
            }
            (Some(ts), None) => b = b.delivery_timestamp(ts),
            (None, Some(d)) => b = b.delay(seconds("delay", d)?),
            (None, None) => {}
        }
        Ok(Message { inner: b.build() })
    }

    #[getter]
    fn topic(&self) -> &str {
        &self.inner.topic
    }
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }
    #[getter]
    fn tag(&self) -> Option<&str> {
        self.inner.tag.as_deref()
    }
    #[getter]
    fn keys(&self) -> Vec<String> {
        self.inner.keys.clone()
    }
    #[getter]
    fn properties(&self) -> HashMap<String, String> {
        self.inner.properties.clone()
    }
    #[getter]
    fn message_group(&self) -> Option<&str> {
        self.inner.message_group.as_deref()
    }
    #[getter]
    fn delivery_timestamp(&self) -> Option<i64> {
        self.inner.delivery_timestamp
    }

    fn __repr__(&self) -> String {
        format!("Message(topic={:?}, {} bytes)", self.inner.topic, self.inner.body.len())
    }
}

/// What a successful send gives back.
#[pyclass(frozen, module = "orbitmq")]
pub(crate) struct SendReceipt {
    pub(crate) inner: core::SendReceipt,
}

#[pymethods]
impl SendReceipt {
    #[getter]
    fn message_id(&self) -> &str {
        &self.inner.message_id
    }
    #[getter]
    fn offset_msg_id(&self) -> Option<&str> {
        self.inner.offset_msg_id.as_deref()
    }
    #[getter]
    fn topic(&self) -> &str {
        &self.inner.topic
    }
    #[getter]
    fn queue_id(&self) -> Option<i32> {
        self.inner.queue_id
    }
    #[getter]
    fn queue_offset(&self) -> i64 {
        self.inner.queue_offset
    }
    #[getter]
    fn transaction_id(&self) -> Option<&str> {
        self.inner.transaction_id.as_deref()
    }
    #[getter]
    fn recall_handle(&self) -> Option<&str> {
        self.inner.recall_handle.as_deref()
    }
    #[getter]
    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }
    fn __repr__(&self) -> String {
        format!(
            "SendReceipt(message_id={:?}, queue_id={}, queue_offset={})",
            self.inner.message_id,
            self.inner.queue_id.map_or_else(|| "None".to_owned(), |q| q.to_string()),
            self.inner.queue_offset
        )
    }
}

/// Receipts as Python objects.
pub(crate) fn receipts(v: Vec<core::SendReceipt>) -> Vec<SendReceipt> {
    v.into_iter().map(|inner| SendReceipt { inner }).collect()
}

/// A received message.
#[pyclass(module = "orbitmq")]
pub(crate) struct MessageView {
    pub(crate) inner: core::MessageView,
}

/// Views as Python objects.
pub(crate) fn views(v: Vec<core::MessageView>) -> Vec<MessageView> {
    v.into_iter().map(|inner| MessageView { inner }).collect()
}

#[pymethods]
impl MessageView {
    #[getter]
    fn message_id(&self) -> &str {
        &self.inner.message_id
    }
    #[getter]
    fn offset_msg_id(&self) -> Option<&str> {
        self.inner.offset_msg_id.as_deref()
    }
    #[getter]
    fn topic(&self) -> &str {
        &self.inner.topic
    }
    #[getter]
    fn tag(&self) -> Option<&str> {
        self.inner.tag.as_deref()
    }
    #[getter]
    fn keys(&self) -> Vec<String> {
        self.inner.keys.clone()
    }
    #[getter]
    fn properties(&self) -> HashMap<String, String> {
        self.inner.properties.clone()
    }
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }
    #[getter]
    fn queue_id(&self) -> i32 {
        self.inner.queue_id
    }
    #[getter]
    fn queue_offset(&self) -> i64 {
        self.inner.queue_offset
    }
    #[getter]
    fn born_timestamp(&self) -> i64 {
        self.inner.born_timestamp
    }
    #[getter]
    fn store_timestamp(&self) -> i64 {
        self.inner.store_timestamp
    }
    #[getter]
    fn delivery_timestamp(&self) -> Option<i64> {
        self.inner.delivery_timestamp
    }
    #[getter]
    fn delivery_attempt(&self) -> u32 {
        self.inner.delivery_attempt
    }
    #[getter]
    fn message_group(&self) -> Option<&str> {
        self.inner.message_group.as_deref()
    }
    #[getter]
    fn born_host(&self) -> &str {
        &self.inner.born_host
    }
    #[getter]
    fn receipt_handle(&self) -> &str {
        &self.inner.receipt_handle
    }
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
    fn __repr__(&self) -> String {
        format!(
            "MessageView(topic={:?}, message_id={:?}, {} bytes)",
            self.inner.topic,
            self.inner.message_id,
            self.inner.body.len()
        )
    }
}

/// One message queue of a topic.
#[pyclass(frozen, eq, hash, module = "orbitmq", from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct MessageQueue {
    pub(crate) inner: core::MessageQueue,
}

#[pymethods]
impl MessageQueue {
    #[new]
    fn new(topic: String, broker: String, queue_id: i32) -> MessageQueue {
        MessageQueue { inner: core::MessageQueue { topic, broker, queue_id } }
    }
    #[getter]
    fn topic(&self) -> &str {
        &self.inner.topic
    }
    #[getter]
    fn broker(&self) -> &str {
        &self.inner.broker
    }
    #[getter]
    fn queue_id(&self) -> i32 {
        self.inner.queue_id
    }
    fn __repr__(&self) -> String {
        format!(
            "MessageQueue(topic={:?}, broker={:?}, queue_id={})",
            self.inner.topic, self.inner.broker, self.inner.queue_id
        )
    }
}

/// Which messages of a topic a consumer gets: a tag expression (`*`, `A || B`) or SQL92.
#[pyclass(frozen, eq, module = "orbitmq", from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct FilterExpression {
    pub(crate) inner: core::FilterExpression,
}

#[pymethods]
impl FilterExpression {
    #[new]
    #[pyo3(signature = (expression = "*".to_owned(), sql = false))]
    fn new(expression: String, sql: bool) -> FilterExpression {
        let inner = if sql {
            core::FilterExpression::Sql(expression)
        } else {
            core::FilterExpression::Tag(expression)
        };
        FilterExpression { inner }
    }
    #[getter]
    fn expression(&self) -> &str {
        match &self.inner {
            core::FilterExpression::Tag(e) | core::FilterExpression::Sql(e) => e,
        }
    }
    #[getter]
    fn is_sql(&self) -> bool {
        matches!(self.inner, core::FilterExpression::Sql(_))
    }
    fn __repr__(&self) -> String {
        format!("FilterExpression({:?}, sql={})", self.expression(), self.is_sql())
    }
}

/// A filter: a `FilterExpression`, or a `str` taken as a tag expression.
#[derive(FromPyObject)]
pub(crate) enum Filter {
    Expr(FilterExpression),
    Tag(String),
}

impl Filter {
    pub(crate) fn into_core(self) -> core::FilterExpression {
        match self {
            Filter::Expr(f) => f.inner,
            Filter::Tag(t) => core::FilterExpression::Tag(t),
        }
    }
}

/// What a push consumer's listener says about a message.
#[pyclass(eq, eq_int, frozen, module = "orbitmq", from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum ConsumeResult {
    SUCCESS,
    FAILURE,
}

impl From<ConsumeResult> for core::ConsumeResult {
    fn from(r: ConsumeResult) -> core::ConsumeResult {
        match r {
            ConsumeResult::SUCCESS => core::ConsumeResult::Success,
            ConsumeResult::FAILURE => core::ConsumeResult::Failure,
        }
    }
}

/// How a consumer group shares messages.
#[pyclass(eq, eq_int, frozen, module = "orbitmq", from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum ConsumerModel {
    CLUSTERING,
    BROADCASTING,
}

impl From<ConsumerModel> for core::ConsumerModel {
    fn from(m: ConsumerModel) -> core::ConsumerModel {
        match m {
            ConsumerModel::CLUSTERING => core::ConsumerModel::Clustering,
            ConsumerModel::BROADCASTING => core::ConsumerModel::Broadcasting,
        }
    }
}

/// What a transaction checker decides for a half message.
#[pyclass(eq, eq_int, frozen, module = "orbitmq", from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum TransactionResolution {
    COMMIT,
    ROLLBACK,
    UNKNOWN,
}

impl From<TransactionResolution> for core::TransactionResolution {
    fn from(r: TransactionResolution) -> core::TransactionResolution {
        match r {
            TransactionResolution::COMMIT => core::TransactionResolution::Commit,
            TransactionResolution::ROLLBACK => core::TransactionResolution::Rollback,
            TransactionResolution::UNKNOWN => core::TransactionResolution::Unknown,
        }
    }
}
