//! What every client handle runs on: the RPC layer, the route cache (QueryRoute, refreshed in
//! the background), a Telemetry stream per endpoint that syncs the client's settings and takes
//! the server's commands, heartbeats, and the background tasks' lifetime.
//!
//! The core never creates a runtime: background tasks run on the runtime the handle was built
//! in (or the one given to it), and stop when the handle is shut down or its last clone
//! dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{FilterExpression, resource};
use crate::client::rpc::Rpc;
use crate::protocol::time::{from_std, to_std};
use crate::protocol::v2::{self, settings::PubSub, telemetry_command::Command};

/// How often routes are refreshed.
const ROUTE_REFRESH: Duration = Duration::from_secs(30);
/// How old a route with nothing usable in it may be before a caller asks again.
pub(crate) const UNUSABLE_ROUTE_RETRY: Duration = Duration::from_secs(1);
/// How often a heartbeat goes to each endpoint.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The body limit assumed until a server says otherwise (RocketMQ's default).
pub(crate) const DEFAULT_MAX_BODY_SIZE: usize = 4 << 20;

/// A topic's route: its message queues, as a server answered them.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) queues: Vec<v2::MessageQueue>,
    cursor: AtomicUsize,
}

impl Route {
    /// The queues a producer may write to: writable, on masters (broker id 0).
    pub(crate) fn writable(&self) -> Vec<&v2::MessageQueue> {
        self.queues
            .iter()
            .filter(|q| {
                matches!(
                    v2::Permission::try_from(q.permission),
                    Ok(v2::Permission::Write | v2::Permission::ReadWrite)
                ) && q.broker.as_ref().is_some_and(|b| b.id == 0)
            })
            .collect()
    }

    /// The queues a consumer may read from: readable, on each group's reader (broker id 0:
    /// the master, or the slave a name server lists in its place while the master is gone),
    /// as the official clients choose them.
    pub(crate) fn readable(&self) -> Vec<&v2::MessageQueue> {
        self.queues
            .iter()
            .filter(|q| {
                matches!(
                    v2::Permission::try_from(q.permission),
                    Ok(v2::Permission::Read | v2::Permission::ReadWrite)
                ) && q.broker.as_ref().is_some_and(|b| b.id == 0)
            })
            .collect()
    }

    /// The next index of a round robin over `n` items.
    pub(crate) fn next(&self, n: usize) -> usize {
        if n == 0 { 0 } else { self.cursor.fetch_add(1, Ordering::Relaxed) % n }
    }
}

/// The `host:port` a queue's broker is reached at.
pub(crate) fn endpoint_of(q: &v2::MessageQueue) -> Option<String> {
    let addr = q.broker.as_ref()?.endpoints.as_ref()?.addresses.first()?;
    let host = if addr.host.contains(':') && !addr.host.starts_with('[') {
        format!("[{}]", addr.host)
    } else {
        addr.host.clone()
    };
    Some(format!("{host}:{}", addr.port))
}

/// What the servers told the client in their settings answer.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub(crate) max_body_size: usize,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) fifo: bool,
    pub(crate) receive_batch_size: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_attempts: 3,
            backoff: Backoff::Exponential {
                initial: Duration::from_millis(10),
                max: Duration::from_secs(1),
                multiplier: 2.0,
            },
            fifo: false,
            receive_batch_size: 32,
        }
    }
}

impl ServerSettings {
    fn update(&mut self, s: &v2::Settings) {
        match &s.pub_sub {
            Some(PubSub::Publishing(p)) if p.max_body_size > 0 => {
                self.max_body_size = usize::try_from(p.max_body_size).unwrap_or(usize::MAX);
            }
            Some(PubSub::Subscription(sub)) => {
                self.fifo = sub.fifo.unwrap_or(false);
                if let Some(n) = sub.receive_batch_size.filter(|n| *n > 0) {
                    self.receive_batch_size = n.unsigned_abs();
                }
            }
            _ => {}
        }
        if let Some(policy) = &s.backoff_policy {
            if policy.max_attempts > 0 {
                self.max_attempts = policy.max_attempts.unsigned_abs();
            }
            match &policy.strategy {
                Some(v2::retry_policy::Strategy::ExponentialBackoff(e)) => {
                    let initial = e.initial.as_ref().map_or(Duration::from_millis(10), to_std);
                    let max = e.max.as_ref().map_or(Duration::from_secs(1), to_std).max(initial);
                    let multiplier = if e.multiplier >= 1.0 { e.multiplier } else { 2.0 };
                    self.backoff = Backoff::Exponential { initial, max, multiplier };
                }
                Some(v2::retry_policy::Strategy::CustomizedBackoff(c)) if !c.next.is_empty() => {
                    self.backoff = Backoff::Custom(c.next.iter().map(to_std).collect());
                }
                _ => {}
            }
        }
    }

    /// The pause before retry `attempt` (1: the first retry) of a send.
    pub(crate) fn send_backoff(&self, attempt: u32) -> Duration {
        self.backoff.after(attempt)
    }
}

/// A server's retry back-off policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Backoff {
    /// `initial`, times `multiplier` per attempt, at most `max`.
    Exponential { initial: Duration, max: Duration, multiplier: f32 },
    /// The pause by attempt (RocketMQ's delay levels); the last one repeats.
    Custom(Vec<Duration>),
}

impl Backoff {
    /// The pause after failed attempt `attempt` (1: the first).
    pub(crate) fn after(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        match self {
            Backoff::Exponential { initial, max, multiplier } => {
                let factor =
                    f64::from(*multiplier).powi(i32::try_from(attempt - 1).unwrap_or(64).min(64));
                Duration::try_from_secs_f64(initial.as_secs_f64() * factor)
                    .unwrap_or(*max)
                    .min(*max)
            }
            Backoff::Custom(levels) => levels
                .get(attempt as usize - 1)
                .or(levels.last())
                .copied()
                .unwrap_or(Duration::from_secs(1)),
        }
    }
}

/// The server commands a client kind answers (a producer's transaction checks, say).
pub(crate) trait CommandHandler: Send + Sync + 'static {
    /// Handles `command` from `endpoint`; answers go back through `reply`.
    fn handle(&self, endpoint: &str, command: Command, reply: mpsc::Sender<v2::TelemetryCommand>);
}

/// One client handle's shared state.
pub(crate) struct Session {
    pub(crate) rpc: Rpc,
    kind: v2::ClientType,
    group: Option<String>,
    topics: Mutex<Vec<String>>,
    subscriptions: Mutex<HashMap<String, FilterExpression>>,
    routes: Mutex<HashMap<String, (Arc<Route>, Instant)>>,
    settings: Mutex<ServerSettings>,
    streams: Mutex<HashMap<String, mpsc::Sender<v2::TelemetryCommand>>>,
    handler: Mutex<Option<Arc<dyn CommandHandler>>>,
    runtime: Handle,
    cancel: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    started: tokio::sync::OnceCell<()>,
    what: &'static str,
}

impl Session {
    /// A session for a `kind` client of `group`, on the current runtime or `runtime`.
    pub(crate) fn new(
        config: ClientConfig,
        kind: v2::ClientType,
        group: Option<String>,
        runtime: Option<Handle>,
        what: &'static str,
    ) -> Result<Arc<Session>> {
        let runtime = match runtime {
            Some(h) => h,
            None => Handle::try_current().map_err(|_| {
                Error::bad_request(format!(
                    "a {what} is built inside a Tokio runtime, or given one with .runtime(handle)"
                ))
            })?,
        };
        if let Some(g) = &group {
            crate::protocol::validate::group(g)?;
        }
        Ok(Arc::new(Session {
            rpc: Rpc::new(config)?,
            kind,
            group,
            topics: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            settings: Mutex::new(ServerSettings::default()),
            streams: Mutex::new(HashMap::new()),
            handler: Mutex::new(None),
            runtime,
            cancel: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            started: tokio::sync::OnceCell::new(),
            what,
        }))
    }

    pub(crate) fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    pub(crate) fn group_resource(&self) -> Option<v2::Resource> {
        self.group.as_ref().map(|g| resource(self.rpc.namespace(), g))
    }

    pub(crate) fn resource(&self, name: &str) -> v2::Resource {
        resource(self.rpc.namespace(), name)
    }

    pub(crate) fn settings(&self) -> ServerSettings {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn CommandHandler>) {
        *self.handler.lock().unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// Adds publishing topics (producers).
    pub(crate) fn add_topics(&self, topics: &[String]) {
        let mut t = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        for topic in topics {
            if !t.contains(topic) {
                t.push(topic.clone());
            }
        }
    }

    /// Sets the subscription of `topic` (consumers).
    pub(crate) fn subscribe(&self, topic: &str, filter: FilterExpression) {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), filter);
    }

    /// Drops the subscription of `topic`.
    pub(crate) fn unsubscribe(&self, topic: &str) {
        self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).remove(topic);
    }

    pub(crate) fn subscriptions(&self) -> Vec<(String, FilterExpression)> {
        let subs = self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = subs.iter().map(|(t, f)| (t.clone(), f.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Stops the background tasks now, without waiting or saying goodbye (a dropped handle).
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Fails once the handle was shut down.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() { Err(Error::closed(self.what)) } else { Ok(()) }
    }

    /// Starts once: fetches the routes of the known topics, opens Telemetry to the servers
    /// (waiting for their settings) and starts the background tasks. Later calls wait for the
    /// first.
    pub(crate) async fn start(self: &Arc<Self>) -> Result<()> {
        self.check_open()?;
        self.started
            .get_or_try_init(|| async {
                let topics: Vec<String> = {
                    let t = self.topics.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    let subs = self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner);
                    t.into_iter().chain(subs.keys().cloned()).collect()
                };
                for topic in &topics {
                    self.route(topic).await.map_err(|e| e.with_operation("start"))?;
                }
                let endpoint = self.access_endpoint()?;
                self.open_telemetry(&endpoint).await?;
                // As the official clients do: a session with every broker the routes name, so
                // each knows this client's settings (type, group) before it is asked for
                // anything (a name server as the access point passes QueryAssignment on to
                // one). A broker that does not answer now is retried with the heartbeats.
                let opening: Vec<_> = self
                    .endpoints()
                    .into_iter()
                    .filter(|e| *e != endpoint)
                    .map(|broker| {
                        let s = Arc::clone(self);
                        self.runtime.spawn(async move {
                            if let Err(e) = s.open_telemetry(&broker).await {
                                tracing::debug!(endpoint = broker, error = %e, "telemetry not open yet");
                            }
                        })
                    })
                    .collect();
                for open in opening {
                    let _ = open.await;
                }
                self.spawn_background();
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }

    /// The first configured endpoint that is not isolated (all of them isolated: the first).
    fn access_endpoint(&self) -> Result<String> {
        let list = self.rpc.config().endpoint_list()?;
        Ok(list.iter().find(|e| !self.rpc.is_isolated(e)).unwrap_or(&list[0]).clone())
    }

    /// The route of `topic`: cached while fresh, else asked of the configured endpoints in
    /// turn until one answers.
    pub(crate) async fn route(&self, topic: &str) -> Result<Arc<Route>> {
        if let Some((route, at)) =
            self.routes.lock().unwrap_or_else(PoisonError::into_inner).get(topic)
            && at.elapsed() < ROUTE_REFRESH
        {
            return Ok(Arc::clone(route));
        }
        self.fetch_route(topic).await
    }

    /// The route of `topic`, asked again if the cached one is older than `min_age`: for a
    /// caller whose cached route has nothing usable (no writable or readable queue, as while
    /// a master is gone), which should not wait for the periodic refresh to see it back.
    pub(crate) async fn refresh_route(&self, topic: &str, min_age: Duration) -> Result<Arc<Route>> {
        if let Some((route, at)) =
            self.routes.lock().unwrap_or_else(PoisonError::into_inner).get(topic)
            && at.elapsed() < min_age
        {
            return Ok(Arc::clone(route));
        }
        self.fetch_route(topic).await
    }

    /// Asks for the route of `topic` now.
    pub(crate) async fn fetch_route(&self, topic: &str) -> Result<Arc<Route>> {
        crate::protocol::validate::topic(topic)?;
        let configured = self.rpc.config().endpoint_list()?;
        let mut order: Vec<&String> =
            configured.iter().filter(|e| !self.rpc.is_isolated(e)).collect();
        order.extend(configured.iter().filter(|e| self.rpc.is_isolated(e)));
        let mut last = None;
        for endpoint in order {
            let req = v2::QueryRouteRequest {
                topic: Some(self.resource(topic)),
                endpoints: Some(endpoints_of(endpoint)),
            };
            let answer = self
                .rpc
                .call("query route", endpoint, Duration::ZERO, req, |mut s, r| async move {
                    s.query_route(r).await
                })
                .await;
            let resp = match answer {
                Ok(resp) => resp,
                Err(e) if e.kind() == ErrorKind::Unavailable || e.kind() == ErrorKind::Timeout => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
                return Err(e.with_operation("query route").with_endpoint(endpoint.as_str()));
            }
            if resp.message_queues.is_empty() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("topic {topic} has no queues"),
                )
                .with_operation("query route")
                .with_endpoint(endpoint.as_str()));
            }
            let route =
                Arc::new(Route { queues: resp.message_queues, cursor: AtomicUsize::new(0) });
            self.routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(topic.to_owned(), (Arc::clone(&route), Instant::now()));
            return Ok(route);
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "no endpoint to ask")))
    }

    /// The settings this client announces.
    fn settings_command(&self, endpoint: &str) -> v2::TelemetryCommand {
        let ns = self.rpc.namespace();
        let pub_sub = match self.kind {
            v2::ClientType::Producer => PubSub::Publishing(v2::Publishing {
                topics: self
                    .topics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|t| resource(ns, t))
                    .collect(),
                max_body_size: 0,
                validate_message_type: true,
            }),
            _ => PubSub::Subscription(v2::Subscription {
                group: self.group_resource(),
                subscriptions: self
                    .subscriptions()
                    .into_iter()
                    .map(|(t, f)| v2::SubscriptionEntry {
                        topic: Some(resource(ns, &t)),
                        expression: Some(f.to_wire()),
                    })
                    .collect(),
                ..Default::default()
            }),
        };
        v2::TelemetryCommand {
            status: None,
            command: Some(Command::Settings(v2::Settings {
                client_type: Some(self.kind as i32),
                access_point: Some(endpoints_of(endpoint)),
                backoff_policy: None,
                request_timeout: Some(from_std(self.rpc.config().request_timeout)),
                pub_sub: Some(pub_sub),
                user_agent: Some(v2::Ua {
                    language: v2::Language::Rust as i32,
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    platform: std::env::consts::OS.to_owned(),
                    hostname: self.rpc.client_id().split('@').next().unwrap_or_default().into(),
                }),
                metric: None,
                client_properties: HashMap::new(),
            })),
        }
    }

    /// Opens the Telemetry stream to `endpoint` unless open, and waits for the server's
    /// settings on it.
    pub(crate) async fn open_telemetry(self: &Arc<Self>, endpoint: &str) -> Result<()> {
        if self.streams.lock().unwrap_or_else(PoisonError::into_inner).contains_key(endpoint) {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(16);
        tx.try_send(self.settings_command(endpoint))
            .map_err(|_| Error::new(ErrorKind::Internal, "telemetry channel"))?;
        let mut stub = self.rpc.stub(endpoint)?;
        let req = self.rpc.request(ReceiverStream::new(rx), Duration::from_secs(365 * 86_400));
        let timeout = self.rpc.config().request_timeout;
        let fail = |e: Error| e.with_operation("telemetry").with_endpoint(endpoint);
        let mut inbound = match tokio::time::timeout(timeout, stub.telemetry(req)).await {
            Err(_) => {
                return Err(fail(Error::new(ErrorKind::Timeout, "no answer to the settings")));
            }
            Ok(Err(status)) => {
                let e = Error::from(status);
                if e.kind() == ErrorKind::Unavailable {
                    self.rpc.isolate(endpoint);
                }
                return Err(fail(e));
            }
            Ok(Ok(resp)) => resp.into_inner(),
        };
        // The first answer is the server's settings (or why it refuses ours).
        let first = tokio::time::timeout(timeout, inbound.message()).await;
        match first {
            Err(_) => return Err(fail(Error::new(ErrorKind::Timeout, "no settings answered"))),
            Ok(Err(status)) => return Err(fail(Error::from(status))),
            Ok(Ok(None)) => {
                return Err(fail(Error::new(ErrorKind::Unavailable, "telemetry stream closed")));
            }
            Ok(Ok(Some(cmd))) => {
                if let Some(e) = cmd.status.as_ref().and_then(Error::from_status) {
                    return Err(fail(e));
                }
                if let Some(Command::Settings(s)) = &cmd.command {
                    self.settings.lock().unwrap_or_else(PoisonError::into_inner).update(s);
                }
            }
        }
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(endpoint.to_owned(), tx.clone());
        let session = Arc::downgrade(self);
        let endpoint = endpoint.to_owned();
        let cancel = self.cancel.clone();
        self.spawn(async move {
            loop {
                let next = tokio::select! {
                    () = cancel.cancelled() => break,
                    next = inbound.message() => next,
                };
                let Some(session) = session.upgrade() else { break };
                if let Ok(Some(cmd)) = next {
                    session.on_command(&endpoint, cmd, &tx);
                } else {
                    // Reopened by the next heartbeat round.
                    session
                        .streams
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&endpoint);
                    break;
                }
            }
        });
        Ok(())
    }

    fn on_command(
        &self,
        endpoint: &str,
        cmd: v2::TelemetryCommand,
        tx: &mpsc::Sender<v2::TelemetryCommand>,
    ) {
        match cmd.command {
            Some(Command::Settings(s)) => {
                self.settings.lock().unwrap_or_else(PoisonError::into_inner).update(&s);
            }
            Some(Command::PrintThreadStackTraceCommand(c)) => {
                let reply = v2::TelemetryCommand {
                    status: None,
                    command: Some(Command::ThreadStackTrace(v2::ThreadStackTrace {
                        nonce: c.nonce,
                        thread_stack_trace: Some(format!(
                            "orbitmq rust client {}",
                            self.rpc.client_id()
                        )),
                    })),
                };
                let _ = tx.try_send(reply);
            }
            Some(Command::VerifyMessageCommand(c)) => {
                let reply = v2::TelemetryCommand {
                    status: None,
                    command: Some(Command::VerifyMessageResult(v2::VerifyMessageResult {
                        nonce: c.nonce,
                    })),
                };
                let _ = tx.try_send(reply);
            }
            Some(other) => {
                let handler = self.handler.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Some(h) = handler {
                    h.handle(endpoint, other, tx.clone());
                }
            }
            None => {}
        }
    }

    /// Sends the current settings on every open stream (after a subscription change).
    pub(crate) fn sync_settings(&self) {
        let streams: Vec<(String, mpsc::Sender<v2::TelemetryCommand>)> = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(e, tx)| (e.clone(), tx.clone()))
            .collect();
        for (endpoint, tx) in streams {
            let _ = tx.try_send(self.settings_command(&endpoint));
        }
    }

    /// Every endpoint the routes name, plus the access endpoint.
    fn endpoints(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flat_map(|(r, _)| r.queues.iter().filter_map(endpoint_of))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    fn spawn_background(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        self.spawn(async move {
            let mut beat = tokio::time::interval(HEARTBEAT);
            let mut refresh = tokio::time::interval(ROUTE_REFRESH);
            beat.tick().await;
            refresh.tick().await;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = beat.tick() => {
                        let Some(s) = weak.upgrade() else { break };
                        s.heartbeat().await;
                    }
                    _ = refresh.tick() => {
                        let Some(s) = weak.upgrade() else { break };
                        let topics: Vec<String> = s.routes.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
                        for topic in topics {
                            if let Err(e) = s.fetch_route(&topic).await {
                                tracing::warn!(topic, error = %e, "route refresh failed; keeping the old route");
                            }
                        }
                    }
                }
            }
        });
    }

    /// A heartbeat to every endpoint, reopening Telemetry where it broke.
    async fn heartbeat(self: &Arc<Self>) {
        for endpoint in self.endpoints() {
            let req = v2::HeartbeatRequest {
                group: self.group_resource(),
                client_type: self.kind as i32,
            };
            let answer = self
                .rpc
                .call("heartbeat", &endpoint, Duration::ZERO, req, |mut s, r| async move {
                    s.heartbeat(r).await
                })
                .await;
            if let Err(e) = answer
                .and_then(|r| r.status.as_ref().and_then(Error::from_status).map_or(Ok(()), Err))
            {
                tracing::debug!(endpoint, error = %e, "heartbeat failed");
                continue;
            }
            if let Err(e) = self.open_telemetry(&endpoint).await {
                tracing::debug!(endpoint, error = %e, "reopening telemetry failed");
            }
        }
    }

    /// Runs `task` on the session's runtime until the session shuts down.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        let handle = self.runtime.spawn(task);
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Stops the background tasks, tells the servers the client is leaving, and waits for the
    /// tasks to end. Idempotent.
    pub(crate) async fn shutdown(&self) {
        if self.cancel.is_cancelled() {
            return;
        }
        self.cancel.cancel();
        let started = self.started.initialized();
        if started {
            for endpoint in self.endpoints() {
                let req = v2::NotifyClientTerminationRequest { group: self.group_resource() };
                let _ = self
                    .rpc
                    .call(
                        "notify termination",
                        &endpoint,
                        Duration::ZERO,
                        req,
                        |mut s, r| async move { s.notify_client_termination(r).await },
                    )
                    .await;
            }
        }
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Never blocks: background tasks see the token and end on their own.
        self.cancel.cancel();
    }
}

/// The `Endpoints` of one `host:port`.
pub(crate) fn endpoints_of(endpoint: &str) -> v2::Endpoints {
    let (host, port) = endpoint.rsplit_once(':').unwrap_or((endpoint, "0"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let scheme = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => v2::AddressScheme::IPv4,
        Ok(std::net::IpAddr::V6(_)) => v2::AddressScheme::IPv6,
        Err(_) => v2::AddressScheme::DomainName,
    };
    v2::Endpoints {
        scheme: scheme as i32,
        addresses: vec![v2::Address { host: host.to_owned(), port: port.parse().unwrap_or(0) }],
    }
}

impl Session {
    /// The endpoint asked for what is not tied to one broker (QueryAssignment).
    pub(crate) fn access_point(&self) -> Result<String> {
        self.access_endpoint()
    }

    /// A token cancelled when the session shuts down, for a handle's own background tasks.
    pub(crate) fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
