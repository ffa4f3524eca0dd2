//! What the fuzz targets share: one broker per fuzz process in a temp directory (the brokers
//! state carries over between inputs, as a real broker's does), its runtime, the in-process
//! `MessagingService`, and `arbitrary` builders for the RocketMQ v2 requests.
#![allow(clippy::missing_panics_doc, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use arbitrary::{Result, Unstructured};
use orbitmq_core::broker::service::Messaging;
use orbitmq_core::broker::{Broker, BrokerConfig};
use orbitmq_core::protocol::v2::messaging_service_server::MessagingService;
use orbitmq_core::protocol::v2::{self, receive_message_response::Content};
use orbitmq_core::storage::StoreConfig;

/// The long-lived broker of this fuzz process.
pub struct Fixture {
    /// Runs the handlers.
    pub rt: tokio::runtime::Runtime,
    /// The broker.
    pub broker: Broker,
    /// Its `MessagingService`, called in-process.
    pub service: Messaging,
    /// `"<store id>."`: what every receipt handle of this broker starts with.
    pub handle_prefix: String,
    /// Receipt handles handed out lately, for acks and changes to name real messages.
    pub handles: Mutex<Vec<String>>,
    _dir: tempfile::TempDir,
}

/// The fixture, built on first use: a message on topic `t` received once by group `g`.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Named so tests/fuzz.sh can remove it: libFuzzer exits without dropping statics.
        let dir = tempfile::Builder::new().prefix("orbitmq-fuzz-").tempdir().unwrap();
        let store = StoreConfig {
            segment_size: 8 << 20,
            store_host: "127.0.0.1:8081".parse().unwrap(),
            ..StoreConfig::new(dir.path())
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let broker = rt.block_on(async { Broker::open(BrokerConfig::default(), store) }).unwrap();
        let service = Messaging::new(broker.clone());
        let f = Fixture {
            rt,
            broker,
            service,
            handle_prefix: String::new(),
            handles: Mutex::new(Vec::new()),
            _dir: dir,
        };
        let send = v2::SendMessageRequest { messages: vec![message("t", "01SEED", b"seed")] };
        f.call(|s| async move { s.send_message(request(send)).await.map(drop) });
        for _ in 0..200 {
            if f.broker.store().dispatched_offset() >= f.broker.store().commitlog_max_offset() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let receive = v2::ReceiveMessageRequest {
            group: Some(resource("g")),
            message_queue: Some(v2::MessageQueue {
                topic: Some(resource("t")),
                ..Default::default()
            }),
            batch_size: 1,
            invisible_duration: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
            ..Default::default()
        };
        f.receive(receive);
        let prefix = f
            .handles
            .lock()
            .unwrap()
            .first()
            .and_then(|h| h.split_once('.').map(|(id, _)| format!("{id}.")));
        Fixture { handle_prefix: prefix.expect("the seed message was received"), ..f }
    })
}

impl Fixture {
    /// Runs one handler call on the runtime, for 200 ms at most (a long poll is cut short,
    /// as when a client goes away).
    pub fn call<F, Fut>(&self, f: F)
    where
        F: FnOnce(Messaging) -> Fut,
        Fut: Future<Output = std::result::Result<(), tonic::Status>>,
    {
        let fut = f(self.service.clone());
        let _ =
            self.rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), fut).await });
    }

    /// A ReceiveMessage, its stream drained; the handles it hands out are remembered.
    pub fn receive(&self, req: v2::ReceiveMessageRequest) {
        let handles = &self.handles;
        self.call(|s| async move {
            use tokio_stream_next::next;
            let mut stream = s.receive_message(request(req)).await?.into_inner();
            while let Some(item) = next(&mut stream).await {
                if let Ok(v2::ReceiveMessageResponse { content: Some(Content::Message(m)) }) = item
                    && let Some(h) = m.system_properties.and_then(|p| p.receipt_handle)
                {
                    let mut hs = handles.lock().unwrap();
                    if hs.len() >= 64 {
                        hs.remove(0);
                    }
                    hs.push(h);
                }
            }
            Ok(())
        });
    }

    /// A receipt handle: a real one, one with this broker's prefix, or anything.
    pub fn handle(&self, u: &mut Unstructured<'_>) -> Result<String> {
        Ok(match u.int_in_range(0..=2)? {
            0 => {
                let hs = self.handles.lock().unwrap();
                if hs.is_empty() { String::new() } else { hs[u.choose_index(hs.len())?].clone() }
            }
            1 => format!("{}{}", self.handle_prefix, u.arbitrary::<&str>()?),
            _ => u.arbitrary::<String>()?,
        })
    }
}

/// Polls a stream without pulling in another crate.
mod tokio_stream_next {
    use std::pin::Pin;

    pub async fn next<S: tonic::codegen::tokio_stream::Stream + Unpin>(
        s: &mut S,
    ) -> Option<S::Item> {
        std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}

/// A request with the metadata every client sends.
pub fn request<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("x-mq-client-id", "fuzz-client".parse().unwrap());
    req
}

/// A resource with no namespace.
pub fn resource(name: &str) -> v2::Resource {
    v2::Resource { resource_namespace: String::new(), name: name.to_owned() }
}

/// A well-formed message.
pub fn message(topic: &str, id: &str, body: &[u8]) -> v2::Message {
    v2::Message {
        topic: Some(resource(topic)),
        user_properties: HashMap::new(),
        system_properties: Some(v2::SystemProperties {
            message_id: id.to_owned(),
            message_type: v2::MessageType::Normal as i32,
            born_timestamp: Some(prost_types::Timestamp { seconds: 1_764_064_800, nanos: 0 }),
            born_host: "127.0.0.1".to_owned(),
            ..Default::default()
        }),
        body: body.to_vec().into(),
    }
}

/// A name: one the fixture uses, a reserved one, or anything.
pub fn name(u: &mut Unstructured<'_>) -> Result<String> {
    const NAMES: &[&str] =
        &["t", "g", "", " ", "TBW102", "%RETRY%g", "%DLQ%g", "rmq_sys_wheel_timer", "NS%t"];
    Ok(if u.ratio(3, 4)? { (*u.choose(NAMES)?).to_owned() } else { u.arbitrary()? })
}

/// A resource named by [`name`].
pub fn arb_resource(u: &mut Unstructured<'_>) -> Result<v2::Resource> {
    Ok(v2::Resource {
        resource_namespace: if u.ratio(1, 8)? { u.arbitrary()? } else { String::new() },
        name: name(u)?,
    })
}

/// Any duration, sometimes a valid one.
pub fn duration(u: &mut Unstructured<'_>) -> Result<prost_types::Duration> {
    Ok(if u.arbitrary()? {
        prost_types::Duration { seconds: u.int_in_range(-2..=50_000)?, nanos: 0 }
    } else {
        prost_types::Duration { seconds: u.arbitrary()?, nanos: u.arbitrary()? }
    })
}

/// Any timestamp, sometimes near now.
pub fn timestamp(u: &mut Unstructured<'_>) -> Result<prost_types::Timestamp> {
    Ok(if u.arbitrary()? {
        prost_types::Timestamp {
            seconds: 1_764_064_800 + u.int_in_range(-100..=200_000)?,
            nanos: 0,
        }
    } else {
        prost_types::Timestamp { seconds: u.arbitrary()?, nanos: u.arbitrary()? }
    })
}

/// A message queue.
pub fn queue(u: &mut Unstructured<'_>) -> Result<v2::MessageQueue> {
    Ok(v2::MessageQueue {
        topic: Some(arb_resource(u)?),
        id: if u.arbitrary()? { u.int_in_range(-1..=9)? } else { u.arbitrary()? },
        permission: u.arbitrary()?,
        broker: None,
        accept_message_types: Vec::new(),
    })
}

/// A message, mostly well-formed, with arbitrary properties, types and times.
pub fn arb_message(u: &mut Unstructured<'_>) -> Result<v2::Message> {
    let body: &[u8] = u.arbitrary()?;
    let mut m = message(&name(u)?, &u.arbitrary::<String>()?, body);
    let sys = m.system_properties.as_mut().unwrap();
    if u.arbitrary()? {
        sys.message_type = if u.arbitrary()? { u.int_in_range(0..=7)? } else { u.arbitrary()? };
    }
    if u.arbitrary()? {
        sys.tag = Some(u.arbitrary()?);
    }
    if u.arbitrary()? {
        sys.keys = u.arbitrary()?;
    }
    if u.arbitrary()? {
        sys.message_group = Some(u.arbitrary()?);
    }
    if u.arbitrary()? {
        sys.delivery_timestamp = Some(timestamp(u)?);
    }
    if u.arbitrary()? {
        sys.body_encoding = u.arbitrary()?;
    }
    if u.arbitrary()? {
        sys.orphaned_transaction_recovery_duration = Some(duration(u)?);
    }
    if u.arbitrary()? {
        m.user_properties = u.arbitrary()?;
    }
    Ok(m)
}

/// A filter expression.
pub fn filter(u: &mut Unstructured<'_>) -> Result<v2::FilterExpression> {
    Ok(v2::FilterExpression {
        r#type: if u.arbitrary()? { u.int_in_range(0..=2)? } else { u.arbitrary()? },
        expression: if u.arbitrary()? { "*".to_owned() } else { u.arbitrary()? },
    })
}

/// A store directory for a fuzz process: on tmpfs when there is one (stores fsync on open and
/// close), named so tests/fuzz.sh can remove it (libFuzzer exits without dropping statics).
pub fn store_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let mut named = tempfile::Builder::new();
    named.prefix("orbitmq-fuzz-");
    let dir = if shm.is_dir() { named.tempdir_in(shm) } else { named.tempdir() };
    dir.unwrap().keep()
}
