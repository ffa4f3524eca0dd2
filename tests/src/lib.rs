//! Test harness: a real broker in-process on a free 127.0.0.1 port with a temp data directory,
//! and gRPC clients that speak to it the way the official RocketMQ clients do.
//!
//! The raw [`Client`] stays for the `e2e` tests (and `server/tests/metrics.rs`): they test the
//! wire protocol itself, malformed requests and missing headers included, which the SDK by
//! design refuses to send; tests that act as a user would use the SDK (`orbitmq_core::client`).
#![allow(clippy::missing_panics_doc, clippy::unwrap_used)]

pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use orbitmq_core::broker::listener::Listener;
use orbitmq_core::broker::{Broker, BrokerConfig};
use orbitmq_core::protocol::v2::messaging_service_client::MessagingServiceClient;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_core::storage::StoreConfig;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// A broker serving on 127.0.0.1, stopped and closed on drop.
pub struct TestBroker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The broker itself, for inspecting state.
    pub broker: Broker,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the data directory alive.
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker with default settings.
    pub async fn start() -> TestBroker {
        Self::start_with(BrokerConfig::default()).await
    }

    /// Starts a broker with `config`.
    pub async fn start_with(config: BrokerConfig) -> TestBroker {
        Self::start_in(tempfile::tempdir().unwrap(), config).await
    }

    /// Starts a broker on the data in `dir` (as left by [`TestBroker::stop_keeping_data`]).
    pub async fn start_in(dir: tempfile::TempDir, config: BrokerConfig) -> TestBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener.into(), dir, config)
    }

    /// Starts a broker with default settings serving TLS with `tls` and, unless `required`,
    /// plaintext, on one port.
    pub async fn start_tls(
        tls: &orbitmq_core::tls::server::ServerTls,
        required: bool,
    ) -> TestBroker {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = Listener::with_tls(tcp, tls, required);
        Self::start_on(listener, tempfile::tempdir().unwrap(), BrokerConfig::default())
    }

    /// Starts a broker on `listener`, over the data in `dir` (inside a Tokio runtime).
    pub fn start_on(
        listener: Listener,
        dir: tempfile::TempDir,
        config: BrokerConfig,
    ) -> TestBroker {
        let addr = listener.local_addr().unwrap();
        let store =
            StoreConfig { segment_size: 8 << 20, store_host: addr, ..StoreConfig::new(dir.path()) };
        let broker = Broker::open(config, store).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let b = broker.clone();
        let server = tokio::spawn(async move {
            b.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestBroker { addr, broker, shutdown: Some(tx), server: Some(server), dir }
    }

    /// A client that identifies itself as `client_id`.
    pub async fn client(&self, client_id: &str) -> Client {
        Client::connect(self.addr, client_id).await
    }

    /// A client in namespace `namespace` (the `x-mq-namespace` header).
    pub async fn client_in(&self, client_id: &str, namespace: &str) -> Client {
        Client::connect_in(self.addr, client_id, namespace).await
    }

    /// Waits until everything stored is dispatched into its queues (readable), 5 s at most.
    pub async fn wait_dispatched(&self) {
        let store = self.broker.store();
        for _ in 0..500 {
            if store.dispatched_offset() >= store.commitlog_max_offset() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not dispatched within 5 s");
    }

    /// Creates (or changes) consumer group `name`.
    pub fn group(&self, name: &str, fifo: bool, max_attempts: u32) {
        self.broker.store().groups().put(
            name,
            orbitmq_core::storage::GroupConfig {
                max_delivery_attempts: max_attempts,
                fifo,
                ..Default::default()
            },
        );
    }

    /// Stops serving, closes the store, and hands back the data directory for a restart.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        self.shutdown_and_close().await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Stops serving and closes the store.
    pub async fn stop(mut self) {
        self.shutdown_and_close().await;
    }

    async fn shutdown_and_close(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        self.broker.close().await.unwrap();
    }
}

/// Adds the metadata every official client sends.
#[derive(Clone)]
pub struct Headers {
    client_id: Option<String>,
    namespace: Option<String>,
    language: &'static str,
}

impl Interceptor for Headers {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(id) = &self.client_id {
            req.metadata_mut()
                .insert("x-mq-client-id", MetadataValue::try_from(id.as_str()).unwrap());
        }
        if let Some(ns) = &self.namespace {
            req.metadata_mut()
                .insert("x-mq-namespace", MetadataValue::try_from(ns.as_str()).unwrap());
        }
        req.metadata_mut().insert("x-mq-language", MetadataValue::from_static(self.language));
        req.metadata_mut().insert("x-mq-protocol", MetadataValue::from_static("v2"));
        Ok(req)
    }
}

/// A raw gRPC client of `MessagingService`.
pub type Raw =
    MessagingServiceClient<tonic::service::interceptor::InterceptedService<Channel, Headers>>;

/// A client speaking the RocketMQ v2 protocol, with helpers for the common calls.
pub struct Client {
    /// The generated client, for calls the helpers do not cover.
    pub raw: Raw,
}

impl Client {
    /// Connects as `client_id` (empty: send no client id).
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Client {
        Self::connect_in(addr, client_id, "").await
    }

    /// Connects as `client_id` in `namespace` (empty: none).
    pub async fn connect_in(addr: SocketAddr, client_id: &str, namespace: &str) -> Client {
        Self::connect_as(addr, client_id, namespace, "RUST").await
    }

    /// Connects as `client_id` in `namespace`, saying it is a `language` client
    /// (`x-mq-language`: JAVA, PYTHON, HTTP for Node.js…).
    pub async fn connect_as(
        addr: SocketAddr,
        client_id: &str,
        namespace: &str,
        language: &'static str,
    ) -> Client {
        let channel =
            Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Self::on_channel_as(channel, client_id, namespace, language)
    }

    /// A client as `client_id` over `channel` (a TLS one, say).
    pub fn on_channel(channel: Channel, client_id: &str) -> Client {
        Self::on_channel_as(channel, client_id, "", "RUST")
    }

    fn on_channel_as(
        channel: Channel,
        client_id: &str,
        namespace: &str,
        language: &'static str,
    ) -> Client {
        let headers = Headers {
            client_id: (!client_id.is_empty()).then(|| client_id.to_owned()),
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            language,
        };
        Client { raw: MessagingServiceClient::with_interceptor(channel, headers) }
    }

    /// Opens a Telemetry stream and sends `settings` on it; returns the sender (keep it to
    /// keep the stream open) and the server's commands.
    pub async fn telemetry(
        &mut self,
        settings: v2::Settings,
    ) -> (tokio::sync::mpsc::Sender<v2::TelemetryCommand>, tonic::Streaming<v2::TelemetryCommand>)
    {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(v2::TelemetryCommand {
            status: None,
            command: Some(v2::telemetry_command::Command::Settings(settings)),
        })
        .await
        .unwrap();
        let stream = self
            .raw
            .telemetry(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (tx, stream)
    }

    /// Runs a receive; returns (status code, messages).
    pub async fn receive_with(
        &mut self,
        req: v2::ReceiveMessageRequest,
    ) -> (Code, Vec<v2::Message>) {
        let mut stream = self.raw.receive_message(req).await.unwrap().into_inner();
        let mut code = Code::Unspecified;
        let mut messages = Vec::new();
        let mut saw_timestamp = false;
        while let Some(item) = stream.message().await.unwrap() {
            match item.content.unwrap() {
                v2::receive_message_response::Content::Status(s) => {
                    code = Code::try_from(s.code).unwrap();
                }
                v2::receive_message_response::Content::Message(m) => messages.push(m),
                v2::receive_message_response::Content::DeliveryTimestamp(_) => saw_timestamp = true,
            }
        }
        assert!(saw_timestamp, "a receive stream always ends with a delivery timestamp");
        (code, messages)
    }

    /// Ends transaction `id` on `topic`; returns the status code.
    pub async fn end_transaction(
        &mut self,
        topic: &str,
        id: &str,
        resolution: v2::TransactionResolution,
        source: v2::TransactionSource,
    ) -> Code {
        let r = self
            .raw
            .end_transaction(v2::EndTransactionRequest {
                topic: Some(resource(topic)),
                message_id: id.to_owned(),
                transaction_id: id.to_owned(),
                resolution: resolution as i32,
                source: source as i32,
                trace_context: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        code(r.status.as_ref())
    }

    /// Changes a message's invisible time (0: visible now); returns (code, new handle).
    pub async fn change_invisible(
        &mut self,
        group: &str,
        topic: &str,
        m: &v2::Message,
        d: Duration,
    ) -> (Code, String) {
        let sys = m.system_properties.as_ref().unwrap();
        let r = self
            .raw
            .change_invisible_duration(v2::ChangeInvisibleDurationRequest {
                group: Some(resource(group)),
                topic: Some(resource(topic)),
                receipt_handle: sys.receipt_handle.clone().unwrap(),
                invisible_duration: Some(duration(d)),
                message_id: sys.message_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        (code(r.status.as_ref()), r.receipt_handle)
    }

    /// Sends one message; returns the response.
    pub async fn send(&mut self, msg: v2::Message) -> v2::SendMessageResponse {
        self.raw
            .send_message(v2::SendMessageRequest { messages: vec![msg] })
            .await
            .unwrap()
            .into_inner()
    }

    /// Receives from `topic` for `group`; returns (status code, messages).
    pub async fn receive(
        &mut self,
        group: &str,
        topic: &str,
        filter: &str,
        batch: i32,
        invisible: Option<Duration>,
        polling: Duration,
    ) -> (Code, Vec<v2::Message>) {
        let req = v2::ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(v2::MessageQueue {
                topic: Some(resource(topic)),
                id: 0,
                ..Default::default()
            }),
            filter_expression: Some(v2::FilterExpression {
                r#type: v2::FilterType::Tag as i32,
                expression: filter.to_owned(),
            }),
            batch_size: batch,
            invisible_duration: invisible.map(duration),
            auto_renew: false,
            long_polling_timeout: Some(duration(polling)),
            attempt_id: None,
        };
        self.receive_with(req).await
    }

    /// Acks one message; returns the entry's status code.
    pub async fn ack(&mut self, group: &str, topic: &str, m: &v2::Message) -> Code {
        let sys = m.system_properties.as_ref().unwrap();
        self.ack_handle(group, topic, &sys.message_id, sys.receipt_handle.as_deref().unwrap()).await
    }

    /// Acks by handle; returns the entry's status code.
    pub async fn ack_handle(
        &mut self,
        group: &str,
        topic: &str,
        message_id: &str,
        handle: &str,
    ) -> Code {
        let resp = self
            .raw
            .ack_message(v2::AckMessageRequest {
                group: Some(resource(group)),
                topic: Some(resource(topic)),
                entries: vec![v2::AckMessageEntry {
                    message_id: message_id.to_owned(),
                    receipt_handle: handle.to_owned(),
                    lite_topic: None,
                }],
            })
            .await
            .unwrap()
            .into_inner();
        Code::try_from(resp.entries[0].status.as_ref().unwrap().code).unwrap()
    }
}

/// A resource with no namespace.
pub fn resource(name: &str) -> v2::Resource {
    v2::Resource { resource_namespace: String::new(), name: name.to_owned() }
}

/// A protobuf duration.
pub use orbitmq_core::protocol::time::from_std as duration;

/// A well-formed message as the official clients build it.
pub fn message(topic: &str, id: &str, body: &str) -> v2::Message {
    v2::Message {
        topic: Some(resource(topic)),
        user_properties: std::collections::HashMap::new(),
        system_properties: Some(v2::SystemProperties {
            message_id: id.to_owned(),
            message_type: v2::MessageType::Normal as i32,
            body_encoding: v2::Encoding::Identity as i32,
            born_host: "127.0.0.1".to_owned(),
            born_timestamp: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            ..Default::default()
        }),
        body: body.as_bytes().to_vec().into(),
    }
}

/// A FIFO message of message group `group`.
pub fn fifo_message(topic: &str, id: &str, group: &str, body: &str) -> v2::Message {
    let mut m = message(topic, id, body);
    let sys = m.system_properties.as_mut().unwrap();
    sys.message_type = v2::MessageType::Fifo as i32;
    sys.message_group = Some(group.to_owned());
    m
}

/// A delay message due at `at_ms` (ms since the epoch).
pub fn delay_message(topic: &str, id: &str, at_ms: i64) -> v2::Message {
    let mut m = message(topic, id, "delayed");
    let sys = m.system_properties.as_mut().unwrap();
    sys.message_type = v2::MessageType::Delay as i32;
    sys.delivery_timestamp = Some(prost_types::Timestamp {
        seconds: at_ms.div_euclid(1000),
        nanos: (at_ms.rem_euclid(1000) * 1_000_000) as i32,
    });
    m
}

/// A transaction (half) message.
pub fn transaction_message(topic: &str, id: &str) -> v2::Message {
    let mut m = message(topic, id, "in a transaction");
    m.system_properties.as_mut().unwrap().message_type = v2::MessageType::Transaction as i32;
    m
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The system properties of a delivered message.
pub fn sys(m: &v2::Message) -> &v2::SystemProperties {
    m.system_properties.as_ref().unwrap()
}

/// The status code of a response's `status`.
pub fn code(s: Option<&v2::Status>) -> Code {
    Code::try_from(s.expect("response has a status").code).unwrap()
}
