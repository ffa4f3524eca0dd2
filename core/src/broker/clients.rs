//! The clients this broker knows, keyed by `x-mq-client-id`: their settings (from Telemetry),
//! when they were last heard from, and the stream to send them commands on. Also the settings
//! the broker answers with (the proxy's merge rules, PROTOCOL.md §2.4).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::broker::BrokerConfig;
use crate::broker::error::{BrokerError, Limit};
use crate::protocol::time::from_std;
use crate::protocol::v2::{
    self, ClientType, CustomizedBackoff, ExponentialBackoff, Metric, RetryPolicy, Settings,
    retry_policy, settings::PubSub,
};
use crate::storage::GroupConfig;
use crate::storage::message::now_millis;

/// A client silent for longer than this is considered gone (auto-renew stops for it, queue
/// assignment leaves it out), even before the expiry sweep forgets it.
pub const CLIENT_EXPIRY: Duration = Duration::from_secs(60);

/// Where the broker sends a client commands (its open Telemetry stream).
pub type TelemetrySender = tokio::sync::mpsc::Sender<Result<v2::TelemetryCommand, tonic::Status>>;

/// What the broker knows of one client.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `x-mq-language` as sent.
    pub language: String,
    /// `x-mq-namespace` of its Telemetry stream.
    pub namespace: String,
    /// The settings it sent on Telemetry, if any yet.
    pub settings: Option<Settings>,
    /// Last call or heartbeat, ms.
    pub last_seen: i64,
    /// Its Telemetry stream, while open.
    pub telemetry: Option<TelemetrySender>,
}

/// The registry of live clients: at most `max_clients` of them, each forgotten by
/// [`Clients::expire`] once silent for `expiry_ms`.
#[derive(Debug)]
pub struct Clients {
    map: Mutex<HashMap<String, ClientInfo>>,
    /// Heard from within this long, ms: alive (auto-renew, queue assignment).
    alive_ms: i64,
    /// Silent this long, ms: forgotten by the sweep.
    expiry_ms: i64,
    max_count: usize,
    max_id_len: usize,
}

impl Clients {
    /// An empty registry with `config`'s expiry and limits.
    pub fn new(config: &BrokerConfig) -> Self {
        let expiry_ms = i64::try_from(config.client_expiry_ms).unwrap_or(i64::MAX);
        Clients {
            map: Mutex::new(HashMap::new()),
            alive_ms: expiry_ms.min(CLIENT_EXPIRY.as_millis() as i64),
            expiry_ms,
            max_count: config.max_clients,
            max_id_len: config.max_client_id_len,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientInfo>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn alive_at(&self, c: &ClientInfo, now: i64) -> bool {
        now - c.last_seen < self.alive_ms
    }

    /// Records that `client_id` called now. Refuses an id longer than `max_client_id_len`
    /// and a new client beyond `max_clients` (the ones already known go on).
    pub fn touch(&self, client_id: &str, language: &str) -> Result<(), BrokerError> {
        if client_id.len() > self.max_id_len {
            return Err(BrokerError::limit(
                Limit::ClientIdLength,
                self.max_id_len,
                format!("the x-mq-client-id header is {} bytes long", client_id.len()),
            ));
        }
        let mut map = self.lock();
        let now = now_millis();
        if let Some(c) = map.get_mut(client_id) {
            c.last_seen = now;
            if c.language.is_empty() {
                language.clone_into(&mut c.language);
            }
            return Ok(());
        }
        if map.len() >= self.max_count {
            return Err(BrokerError::limit(
                Limit::Clients,
                self.max_count,
                format!("{} clients are connected", map.len()),
            ));
        }
        map.insert(
            client_id.to_owned(),
            ClientInfo { language: language.to_owned(), last_seen: now, ..ClientInfo::default() },
        );
        Ok(())
    }

    /// Forgets the clients silent for `client_expiry_ms` at `now` (ms), as Apache's
    /// `scanNotActiveChannel` does: their settings and Telemetry sender go with them (an open
    /// stream alone does not keep a client: the official clients heartbeat every 10 s, and a
    /// heartbeat or settings on the stream registers them again). Returns what was forgotten.
    pub fn expire(&self, now: i64) -> Vec<(String, ClientInfo)> {
        let mut gone = Vec::new();
        self.lock().retain(|id, c| {
            if now - c.last_seen <= self.expiry_ms {
                return true;
            }
            gone.push((id.clone(), std::mem::take(c)));
            false
        });
        gone
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Stores the settings `client_id` sent on its Telemetry stream `telemetry`.
    pub fn set_settings(
        &self,
        client_id: &str,
        language: &str,
        namespace: &str,
        settings: Settings,
        telemetry: TelemetrySender,
    ) -> Result<(), BrokerError> {
        let mut map = self.lock();
        if !map.contains_key(client_id) && map.len() >= self.max_count {
            return Err(BrokerError::limit(
                Limit::Clients,
                self.max_count,
                format!("{} clients are connected", map.len()),
            ));
        }
        let c = map.entry(client_id.to_owned()).or_default();
        c.settings = Some(settings);
        c.last_seen = now_millis();
        c.telemetry = Some(telemetry);
        language.clone_into(&mut c.language);
        namespace.clone_into(&mut c.namespace);
        Ok(())
    }

    /// `client_id`'s Telemetry stream `telemetry` ended.
    pub fn stream_closed(&self, client_id: &str, telemetry: &TelemetrySender) {
        if let Some(c) = self.lock().get_mut(client_id)
            && c.telemetry.as_ref().is_some_and(|t| t.same_channel(telemetry))
        {
            c.telemetry = None;
        }
    }

    /// The Telemetry stream of a live producer that publishes `topic` (a stored name), for
    /// transaction checks.
    pub fn producer_stream(&self, topic: &str) -> Option<TelemetrySender> {
        let now = now_millis();
        self.lock().values().find_map(|c| {
            let Some(PubSub::Publishing(p)) = c.settings.as_ref()?.pub_sub.as_ref() else {
                return None;
            };
            let publishes = p
                .topics
                .iter()
                .any(|t| crate::broker::namespace::stored_name(Some(t), &c.namespace) == topic);
            (publishes && self.alive_at(c, now)).then(|| c.telemetry.clone()).flatten()
        })
    }

    /// Forgets `client_id` (it terminated).
    pub fn remove(&self, client_id: &str) -> Option<ClientInfo> {
        self.lock().remove(client_id)
    }

    /// Whether `client_id` was heard from within [`CLIENT_EXPIRY`] (or `client_expiry_ms`
    /// when shorter).
    pub fn is_alive(&self, client_id: &str) -> bool {
        let now = now_millis();
        self.lock().get(client_id).is_some_and(|c| self.alive_at(c, now))
    }

    /// The live clients whose settings make them `client_type` consumers of `group`, sorted by
    /// client id (the order queue allocation needs, the same on every call).
    pub fn members(&self, group: &str, client_type: ClientType) -> Vec<String> {
        let now = now_millis();
        let mut ids: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, c)| {
                self.alive_at(c, now)
                    && c.settings.as_ref().is_some_and(|s| {
                        s.client_type == Some(client_type as i32)
                            && settings_group(s, &c.namespace).is_some_and(|g| g == group)
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The live consumers of `group` (any consumer type), with what the broker knows of them,
    /// sorted by client id: what `admin group members` shows.
    pub fn group_clients(&self, group: &str) -> Vec<(String, ClientInfo)> {
        let now = now_millis();
        let mut found: Vec<(String, ClientInfo)> = self
            .lock()
            .iter()
            .filter(|(_, c)| {
                self.alive_at(c, now)
                    && c.settings.as_ref().is_some_and(|s| {
                        is_consumer(s)
                            && settings_group(s, &c.namespace).is_some_and(|g| g == group)
                    })
            })
            .map(|(id, c)| (id.clone(), ClientInfo { telemetry: None, ..c.clone() }))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The settings `client_id` sent, if any.
    pub fn settings(&self, client_id: &str) -> Option<Settings> {
        self.lock().get(client_id).and_then(|c| c.settings.clone())
    }

    /// Every known client id with its info.
    pub fn all(&self) -> Vec<(String, ClientInfo)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// RocketMQ's default retry delays for consumers (delay levels 3..18).
const CONSUMER_BACKOFF_SECS: [u64; 18] =
    [1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200];

/// The settings the broker answers a client's `settings` with: the client's own, with the
/// server-decided fields filled in.
pub fn merged_settings(
    incoming: &Settings,
    language: &str,
    config: &BrokerConfig,
    group: Option<&GroupConfig>,
) -> Settings {
    let mut s = incoming.clone();
    s.metric = Some(Metric { on: false, endpoints: None });
    match s.pub_sub.as_mut() {
        Some(PubSub::Publishing(p)) => {
            p.max_body_size = i32::try_from(config.max_body_size).unwrap_or(i32::MAX);
            p.validate_message_type = true;
            s.backoff_policy = Some(RetryPolicy {
                max_attempts: 3,
                strategy: Some(retry_policy::Strategy::ExponentialBackoff(ExponentialBackoff {
                    initial: Some(from_std(Duration::from_millis(10))),
                    max: Some(from_std(Duration::from_secs(1))),
                    multiplier: 2.0,
                })),
            });
        }
        Some(PubSub::Subscription(sub)) => {
            let max_attempts =
                group.map_or(config.max_delivery_attempts, |g| g.max_delivery_attempts);
            sub.fifo = Some(group.is_some_and(|g| g.fifo));
            sub.receive_batch_size = Some(32);
            sub.long_polling_timeout = Some(from_std(Duration::from_secs(20)));
            // Node's push consumer understands only exponential back-off; the others follow
            // the proxy's customised RocketMQ delay levels.
            let strategy = if is_node(language) {
                retry_policy::Strategy::ExponentialBackoff(ExponentialBackoff {
                    initial: Some(from_std(Duration::from_secs(1))),
                    max: Some(from_std(Duration::from_secs(7200))),
                    multiplier: 2.0,
                })
            } else {
                retry_policy::Strategy::CustomizedBackoff(CustomizedBackoff {
                    next: CONSUMER_BACKOFF_SECS
                        .iter()
                        .map(|s| from_std(Duration::from_secs(*s)))
                        .collect(),
                })
            };
            s.backoff_policy = Some(RetryPolicy {
                max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
                strategy: Some(strategy),
            });
        }
        None => {}
    }
    s
}

fn is_node(language: &str) -> bool {
    matches!(language, "HTTP" | "NODE_JS" | "NODEJS")
}

/// The consumer group (stored name, in the client's `namespace`) a client's settings name, if
/// it is a consumer.
pub fn settings_group(s: &Settings, namespace: &str) -> Option<String> {
    match &s.pub_sub {
        Some(PubSub::Subscription(sub)) => {
            sub.group.as_ref().map(|g| crate::broker::namespace::stored_name(Some(g), namespace))
        }
        _ => None,
    }
}

/// Whether the settings are a consumer's.
pub fn is_consumer(s: &Settings) -> bool {
    matches!(
        s.client_type.and_then(|t| ClientType::try_from(t).ok()),
        Some(ClientType::PushConsumer | ClientType::SimpleConsumer | ClientType::PullConsumer)
    )
}

/// Status OK, the way the proxy words it.
pub fn ok() -> v2::Status {
    v2::Status { code: v2::Code::Ok as i32, message: "OK".to_owned() }
}
