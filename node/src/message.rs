//! Messages, receipts, message views and the small enums, between JS and the core's `model`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use orbitmq_core::client::{self as core, ClientConfig, ClientTls};

/// An access key and its secret: requests are signed with them.
#[napi(object)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    /// A session token, sent as `x-mq-session-token`.
    pub security_token: Option<String>,
}

/// The connection settings every client takes.
pub struct Connection {
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    pub tls: Option<Either<bool, String>>,
    pub request_timeout: Option<u32>,
}

impl Connection {
    /// The core configuration: `tls` is `true` (TLS, any certificate), `false` (plaintext,
    /// the default) or the path of a PEM file of CA certificates to verify the server with.
    pub fn config(self) -> ClientConfig {
        let mut c = ClientConfig::new(self.endpoints).namespace(self.namespace.unwrap_or_default());
        if let Some(cred) = self.credentials {
            let mut k = core::Credentials::new(cred.access_key, cred.secret_key);
            k.security_token = cred.security_token;
            c = c.credentials(k);
        }
        if let Some(ms) = self.request_timeout {
            c = c.request_timeout(Duration::from_millis(u64::from(ms)));
        }
        c.tls(match self.tls {
            None | Some(Either::A(false)) => ClientTls::Off,
            Some(Either::A(true)) => ClientTls::AcceptAny,
            Some(Either::B(ca)) => ClientTls::Ca(ca.into()),
        })
    }
}

/// The connection fields of an options object (they are the same in every client's).
macro_rules! connection {
    ($o:expr) => {
        $crate::message::Connection {
            endpoints: $o.endpoints,
            namespace: $o.namespace,
            credentials: $o.credentials,
            tls: $o.tls,
            request_timeout: $o.request_timeout,
        }
    };
}
pub(crate) use connection;

/// A message to send.
#[napi(object, object_to_js = false)]
pub struct Message {
    pub topic: String,
    /// The body: a `Buffer` (or a string, sent as UTF-8).
    pub body: Either<Buffer, String>,
    pub tag: Option<String>,
    pub keys: Option<Vec<String>>,
    pub properties: Option<HashMap<String, String>>,
    /// FIFO: messages of one group are consumed in order.
    pub message_group: Option<String>,
    /// Delay: delivered at this time (ms since the epoch).
    pub delivery_timestamp: Option<i64>,
    /// Delay: delivered this many ms from now.
    pub delay: Option<u32>,
}

impl From<Message> for core::Message {
    fn from(m: Message) -> core::Message {
        let body = match m.body {
            Either::A(b) => b.to_vec(),
            Either::B(s) => s.into_bytes(),
        };
        let mut b = core::Message::builder(m.topic).body(body).keys(m.keys.unwrap_or_default());
        if let Some(t) = m.tag {
            b = b.tag(t);
        }
        for (k, v) in m.properties.unwrap_or_default() {
            b = b.property(k, v);
        }
        if let Some(g) = m.message_group {
            b = b.message_group(g);
        }
        if let Some(t) = m.delivery_timestamp {
            b = b.delivery_timestamp(t);
        }
        if let Some(d) = m.delay {
            b = b.delay(Duration::from_millis(u64::from(d)));
        }
        b.build()
    }
}

/// What a send answers.
#[napi(object)]
pub struct SendReceipt {
    pub message_id: String,
    /// The id by store position (RocketMQ's `offsetMsgId`), when the server gives it.
    pub offset_msg_id: Option<String>,
    pub topic: String,
    pub queue_id: Option<i32>,
    pub queue_offset: i64,
    /// Transactional sends: the transaction id.
    pub transaction_id: Option<String>,
    /// Delay messages: the handle `producer.recall` takes.
    pub recall_handle: Option<String>,
    /// The endpoint that stored it.
    pub endpoint: String,
}

impl From<core::SendReceipt> for SendReceipt {
    fn from(r: core::SendReceipt) -> SendReceipt {
        SendReceipt {
            message_id: r.message_id,
            offset_msg_id: r.offset_msg_id,
            topic: r.topic,
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            transaction_id: r.transaction_id,
            recall_handle: r.recall_handle,
            endpoint: r.endpoint,
        }
    }
}

/// A received message. Consumers' `ack` and `changeInvisibleDuration` take it back.
#[napi]
#[derive(Clone)]
pub struct MessageView {
    pub(crate) inner: Arc<Mutex<core::MessageView>>,
}

impl From<core::MessageView> for MessageView {
    fn from(m: core::MessageView) -> MessageView {
        MessageView { inner: Arc::new(Mutex::new(m)) }
    }
}

impl MessageView {
    pub(crate) fn get(&self) -> std::sync::MutexGuard<'_, core::MessageView> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> core::MessageView {
        self.get().clone()
    }
}

pub(crate) fn views(list: Vec<core::MessageView>) -> Vec<MessageView> {
    list.into_iter().map(MessageView::from).collect()
}

#[napi]
impl MessageView {
    #[napi(getter)]
    pub fn message_id(&self) -> String {
        self.get().message_id.clone()
    }

    #[napi(getter)]
    pub fn offset_msg_id(&self) -> Option<String> {
        self.get().offset_msg_id.clone()
    }

    #[napi(getter)]
    pub fn topic(&self) -> String {
        self.get().topic.clone()
    }

    #[napi(getter)]
    pub fn tag(&self) -> Option<String> {
        self.get().tag.clone()
    }

    #[napi(getter)]
    pub fn keys(&self) -> Vec<String> {
        self.get().keys.clone()
    }

    #[napi(getter)]
    pub fn properties(&self) -> HashMap<String, String> {
        self.get().properties.clone()
    }

    #[napi(getter)]
    pub fn body(&self) -> Buffer {
        Buffer::from(self.get().body.to_vec())
    }

    #[napi(getter)]
    pub fn queue_id(&self) -> i32 {
        self.get().queue_id
    }

    #[napi(getter)]
    pub fn queue_offset(&self) -> i64 {
        self.get().queue_offset
    }

    #[napi(getter)]
    pub fn born_timestamp(&self) -> i64 {
        self.get().born_timestamp
    }

    #[napi(getter)]
    pub fn store_timestamp(&self) -> i64 {
        self.get().store_timestamp
    }

    #[napi(getter)]
    pub fn delivery_timestamp(&self) -> Option<i64> {
        self.get().delivery_timestamp
    }

    /// 1 for the first delivery.
    #[napi(getter)]
    pub fn delivery_attempt(&self) -> u32 {
        self.get().delivery_attempt
    }

    #[napi(getter)]
    pub fn message_group(&self) -> Option<String> {
        self.get().message_group.clone()
    }

    #[napi(getter)]
    pub fn born_host(&self) -> String {
        self.get().born_host.clone()
    }

    /// The current receipt handle (`changeInvisibleDuration` renews it).
    #[napi(getter)]
    pub fn receipt_handle(&self) -> String {
        self.get().receipt_handle.clone()
    }

    /// The endpoint the message came from.
    #[napi(getter)]
    pub fn endpoint(&self) -> String {
        self.get().endpoint().to_owned()
    }
}

/// What a push consumer's listener answers.
#[napi(string_enum)]
#[derive(PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ConsumeResult {
    /// Consumed: acknowledge it.
    SUCCESS,
    /// Not consumed: redeliver it after the group's back-off.
    FAILURE,
}

/// How a push consumer's group shares messages.
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ConsumerModel {
    /// Each message to one member of the group (the default).
    CLUSTERING,
    /// Each message to every member.
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
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum TransactionResolution {
    COMMIT,
    ROLLBACK,
    /// Not known yet: the server asks again later.
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

/// One message queue of a topic.
#[napi(object)]
pub struct MessageQueue {
    pub topic: String,
    pub broker: String,
    pub queue_id: i32,
}

impl From<core::MessageQueue> for MessageQueue {
    fn from(q: core::MessageQueue) -> MessageQueue {
        MessageQueue { topic: q.topic, broker: q.broker, queue_id: q.queue_id }
    }
}

impl From<MessageQueue> for core::MessageQueue {
    fn from(q: MessageQueue) -> core::MessageQueue {
        core::MessageQueue { topic: q.topic, broker: q.broker, queue_id: q.queue_id }
    }
}

/// A JS callback taking a message and answering `R` or a promise of it.
pub type Callback<R> =
    ThreadsafeFunction<MessageView, Either<Promise<R>, R>, MessageView, Status, false>;

/// A JS callback held until the client shuts down: releasing it lets the process exit.
pub struct Held<R: 'static + FromNapiValue + ValidateNapiValue + TypeName>(
    Mutex<Option<Arc<Callback<R>>>>,
);

impl<R: 'static + FromNapiValue + ValidateNapiValue + TypeName> Held<R> {
    pub fn new(f: Option<Callback<R>>) -> Arc<Held<R>> {
        Arc::new(Held(Mutex::new(f.map(Arc::new))))
    }

    /// Calls the callback with `message`: its answer, or its error (a throw, a rejection, a
    /// value of the wrong type, or the client was shut down).
    pub async fn call(&self, message: core::MessageView) -> Result<R> {
        let f = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let f = f.ok_or_else(|| Error::from_reason("the client was shut down"))?;
        match f.call_async_catch(MessageView::from(message)).await? {
            Either::A(p) => p.await,
            Either::B(v) => Ok(v),
        }
    }

    /// Drops the callback.
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}
