//! `apache.rocketmq.v2.MessagingService` over the broker: reads request metadata, calls the
//! broker, and puts the outcome in the response's in-body `Status` (RocketMQ's convention:
//! the gRPC status stays OK). No behaviour lives here beyond that conversion.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::broker::clients::{is_consumer, merged_settings, ok, settings_group};
use crate::broker::convert::{BodyDigest, Delivered, to_wire};
use crate::broker::error::BrokerError;
use crate::broker::pull::Pulled;
use crate::broker::{Broker, namespace, validate};
use crate::protocol::auth;
use crate::protocol::time::{signed_duration_ms, timestamp};
use crate::protocol::v2::messaging_service_server::MessagingService;
use crate::protocol::v2::{self, Code, telemetry_command::Command};
use crate::protocol::{HEADER_LOCAL_ROUTE, HEADER_OFFSET_MSG_IDS, HEADER_QUEUE_IDS};
use crate::storage::message::now_millis;

/// The client-facing gRPC service.
#[derive(Debug, Clone)]
pub struct Messaging {
    broker: Broker,
}

/// The invisible time a ChangeInvisibleDuration asks for, checked as the proxy's
/// `GrpcValidator.validateInvisibleTime(ms, 0)` does: 0 (visible now) up to 12 h. A negative
/// duration is refused, not taken as 0: the client would believe it had delayed the message.
fn change_invisible_ms(d: Option<&prost_types::Duration>) -> Result<i64, BrokerError> {
    use crate::broker::receive::MAX_INVISIBLE_MS;
    let illegal = |m: String| BrokerError::new(Code::IllegalInvisibleTime, m);
    let d = d.ok_or_else(|| illegal("invisible_duration is required".to_owned()))?;
    let ms = signed_duration_ms(d).ok_or_else(|| {
        illegal(format!(
            "invisible_duration {{ seconds: {}, nanos: {} }} is not a valid protobuf Duration",
            d.seconds, d.nanos
        ))
    })?;
    if ms < 0 {
        return Err(illegal(format!("invisible_duration {ms} ms is too small, min is 0 ms")));
    }
    if ms > MAX_INVISIBLE_MS {
        return Err(illegal(format!(
            "invisible_duration {ms} ms is too large, max is {MAX_INVISIBLE_MS} ms"
        )));
    }
    Ok(ms)
}

/// The decoding limit of `MessagingService`: `max_request_size`, but never below one message of
/// `max_body_size` plus room for its properties, so an over-large body still reaches the
/// validation that answers `MESSAGE_BODY_TOO_LARGE`.
pub(crate) fn request_limit(config: &crate::broker::BrokerConfig) -> usize {
    config.max_request_size.max(config.max_body_size.saturating_add(64 << 10))
}

/// tonic refuses a request whose length prefix is over the decoding limit, before reading its
/// body, with `OUT_OF_RANGE`. gRPC's convention for "message larger than max" (grpc-java,
/// grpc-go, and so Apache's proxy) is `RESOURCE_EXHAUSTED`, which clients read as "too big"
/// rather than "bad offset": this rewrites that one status.
pub(crate) fn oversized_request_status<B>(
    mut res: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";
    let Some(status) = Status::from_header_map(res.headers()) else { return res };
    if status.code() != tonic::Code::OutOfRange || !status.message().starts_with(TONIC_TOO_LARGE) {
        return res;
    }
    let detail = status.message().trim_start_matches(TONIC_TOO_LARGE);
    let exhausted = Status::resource_exhausted(format!(
        "request too large ({detail}); send smaller batches or raise [broker] max_request_size"
    ));
    if exhausted.add_header(res.headers_mut()).is_err() {
        tracing::warn!("cannot rewrite the status of an over-large request");
    }
    res
}

impl Messaging {
    /// Serves `broker`.
    pub fn new(broker: Broker) -> Self {
        Messaging { broker }
    }
}

fn status(code: Code, message: impl Into<String>) -> v2::Status {
    v2::Status { code: code as i32, message: message.into() }
}

fn err_status(e: &BrokerError) -> v2::Status {
    status(e.code, e.message.clone())
}

/// What every request carries in its metadata.
struct Meta {
    client_id: String,
    language: String,
    namespace: String,
    deadline: Option<Duration>,
}

fn header<'a, T>(req: &'a Request<T>, name: &str) -> Option<&'a str> {
    req.metadata().get(name).and_then(|v| v.to_str().ok())
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n), as the gRPC spec says.
/// Anything else is ignored (no deadline), never an overflow.
fn grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at_checked(v.len().checked_sub(1)?)?;
    if num.is_empty() || num.len() > 8 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl Messaging {
    /// Checks the request's signature against the broker's credentials, if it has some. A
    /// refusal is the in-body `UNAUTHORIZED` (40100) with the cause, as Apache's proxy answers
    /// an `AuthenticationException` (`proxy/src/main/java/org/apache/rocketmq/proxy/grpc/v2/
    /// common/ResponseBuilder.java`), which the official clients raise as their
    /// unauthorized error.
    fn authenticate<T>(&self, req: &Request<T>) -> Result<(), BrokerError> {
        auth::check(self.broker.config().credentials.as_ref(), req.metadata()).map_err(|e| {
            tracing::debug!(remote = ?req.remote_addr(), error = %e, "request refused");
            BrokerError::new(Code::Unauthorized, e.to_string())
        })
    }

    /// Reads the metadata: `UNAUTHORIZED` without valid credentials when the broker has some,
    /// then `CLIENT_ID_REQUIRED` without `x-mq-client-id` (the order of Apache's proxy, whose
    /// authentication pipeline runs before `validateContext`).
    fn meta<T>(&self, req: &Request<T>) -> Result<Meta, BrokerError> {
        self.authenticate(req)?;
        let client_id =
            header(req, "x-mq-client-id").filter(|c| !c.is_empty()).ok_or_else(|| {
                BrokerError::new(Code::ClientIdRequired, "the x-mq-client-id header is required")
            })?;
        let meta = Meta {
            client_id: client_id.to_owned(),
            language: header(req, "x-mq-language").unwrap_or_default().to_owned(),
            namespace: header(req, "x-mq-namespace").unwrap_or_default().to_owned(),
            deadline: header(req, "grpc-timeout").and_then(grpc_timeout),
        };
        namespace::validate(&meta.namespace)?;
        self.broker.clients().touch(&meta.client_id, &meta.language)?;
        Ok(meta)
    }
}

/// Where routes tell clients to reach the broker. One node: where the client reached us (its
/// access point), else the address the broker listens on.
fn access_point(broker: &Broker, given: Option<&v2::Endpoints>) -> v2::Endpoints {
    given.filter(|e| !e.addresses.is_empty()).cloned().unwrap_or_else(|| {
        let addr = broker.address();
        v2::Endpoints {
            scheme: if addr.is_ipv4() { v2::AddressScheme::IPv4 } else { v2::AddressScheme::IPv6 }
                as i32,
            addresses: vec![v2::Address {
                host: addr.ip().to_string(),
                port: i32::from(addr.port()),
            }],
        }
    })
}

/// A unary answer whose status says how the call went.
trait Answer {
    fn status(&self) -> Option<&v2::Status>;
}

macro_rules! answers {
    ($($t:ty),* $(,)?) => {
        $(impl Answer for $t {
            fn status(&self) -> Option<&v2::Status> {
                self.status.as_ref()
            }
        })*
    };
}

answers!(
    v2::QueryRouteResponse,
    v2::HeartbeatResponse,
    v2::SendMessageResponse,
    v2::QueryAssignmentResponse,
    v2::AckMessageResponse,
    v2::ForwardMessageToDeadLetterQueueResponse,
    v2::UpdateOffsetResponse,
    v2::GetOffsetResponse,
    v2::QueryOffsetResponse,
    v2::EndTransactionResponse,
    v2::NotifyClientTerminationResponse,
    v2::ChangeInvisibleDurationResponse,
    v2::RecallMessageResponse,
);

/// The code of a status (an absent one reads as OK, as clients read it).
fn code_of(st: Option<&v2::Status>) -> Code {
    st.map_or(Code::Ok, |s| Code::try_from(s.code).unwrap_or(Code::InternalError))
}

impl Messaging {
    /// Counts messages delivered to `group` from the topic of `queue` (stored names).
    fn count_out<'a>(
        &self,
        group: Option<&v2::Resource>,
        queue: Option<&v2::MessageQueue>,
        messages: impl Iterator<Item = &'a crate::storage::StoredMessage>,
    ) {
        let (Some(group), Some(topic)) = (group, queue.and_then(|q| q.topic.as_ref())) else {
            return;
        };
        let (n, bytes) = messages.fold((0, 0), |(n, b), m| (n + 1, b + m.body.len() as u64));
        self.broker.metrics().messages_out(&topic.name, &group.name, n, bytes);
    }

    /// Records a unary call in `rocketmq_rpc_latency` and answers it.
    fn answered<R: Answer>(&self, method: &'static str, start: Instant, r: R) -> Response<R> {
        self.broker.metrics().rpc(method, code_of(r.status()), false, start.elapsed());
        Response::new(r)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn once_stream<T: Send + 'static>(items: Vec<T>) -> BoxStream<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn query_route(
        &self,
        request: Request<v2::QueryRouteRequest>,
    ) -> Result<Response<v2::QueryRouteResponse>, Status> {
        let start = Instant::now();
        let result = async {
            let meta = self.meta(&request)?;
            let req = request.get_ref();
            let asked = req.topic.clone().unwrap_or_default();
            let topic = v2::Resource {
                resource_namespace: String::new(),
                name: namespace::stored_name(Some(&asked), &meta.namespace),
            };
            // In a cluster, the whole cluster's route (unless a name server asks for this
            // broker's own); alone, or with no name server answering, this broker's queues.
            let cluster = if request.metadata().contains_key(HEADER_LOCAL_ROUTE) {
                None
            } else {
                validate::topic(&topic.name)?;
                self.broker.cluster_route(&topic).await
            };
            let mut queues = match cluster {
                Some(queues) => queues,
                None => {
                    self.broker.route(&topic, access_point(&self.broker, req.endpoints.as_ref()))?
                }
            };
            for q in &mut queues {
                q.topic = Some(asked.clone());
            }
            Ok::<_, BrokerError>(queues)
        }
        .await;
        Ok(self.answered(
            "QueryRoute",
            start,
            match result {
                Ok(message_queues) => v2::QueryRouteResponse { status: Some(ok()), message_queues },
                Err(e) => v2::QueryRouteResponse {
                    status: Some(err_status(&e)),
                    message_queues: Vec::new(),
                },
            },
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<v2::HeartbeatRequest>,
    ) -> Result<Response<v2::HeartbeatResponse>, Status> {
        let start = Instant::now();
        let st = match self.meta(&request) {
            Ok(_) => match request.get_ref().group.as_ref().filter(|g| !g.name.is_empty()) {
                Some(g) => {
                    validate::group(&g.name).map_or_else(|e| err_status(&e.into()), |()| ok())
                }
                None => ok(),
            },
            Err(e) => err_status(&e),
        };
        Ok(self.answered("Heartbeat", start, v2::HeartbeatResponse { status: Some(st) }))
    }

    async fn send_message(
        &self,
        request: Request<v2::SendMessageRequest>,
    ) -> Result<Response<v2::SendMessageResponse>, Status> {
        let start = Instant::now();
        let remote = request.remote_addr();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let result = match meta {
            Ok(meta) => {
                for m in &mut req.messages {
                    namespace::wrap_resource(&mut m.topic, &meta.namespace);
                }
                self.broker.send(&req.messages, remote).await
            }
            Err(e) => Err(e),
        };
        let messages = &req.messages;
        // OrbitMQ's own extension, in headers the official clients ignore: each entry's
        // offset_msg_id (store host + CommitLog offset) and, for messages stored in their own
        // topic, queue id.
        let extension = result.as_ref().ok().map(|sent| {
            let store = self.broker.store();
            let ids: Vec<String> =
                sent.iter().map(|s| store.offset_msg_id(s.put.commitlog_offset)).collect();
            let queues: Vec<String> = sent
                .iter()
                .map(|s| {
                    if s.transaction_id.is_empty() && s.recall_handle.is_empty() {
                        s.put.queue_id.to_string()
                    } else {
                        String::new()
                    }
                })
                .collect();
            (ids.join(","), queues.join(","))
        });
        let mut response = self.answered(
            "SendMessage",
            start,
            match result {
                Ok(sent) => v2::SendMessageResponse {
                    status: Some(ok()),
                    entries: sent
                        .into_iter()
                        .zip(messages)
                        .map(|(sent, m)| v2::SendResultEntry {
                            status: Some(ok()),
                            message_id: m
                                .system_properties
                                .as_ref()
                                .map(|s| s.message_id.clone())
                                .unwrap_or_default(),
                            transaction_id: sent.transaction_id,
                            offset: sent.put.queue_offset as i64,
                            recall_handle: sent.recall_handle,
                        })
                        .collect(),
                },
                Err(e) => v2::SendMessageResponse {
                    status: Some(err_status(&e)),
                    // Java and Node read the entry's status: give every message the cause.
                    entries: messages
                        .iter()
                        .map(|m| v2::SendResultEntry {
                            status: Some(err_status(&e)),
                            message_id: m
                                .system_properties
                                .as_ref()
                                .map(|s| s.message_id.clone())
                                .unwrap_or_default(),
                            ..Default::default()
                        })
                        .collect(),
                },
            },
        );
        if let Some((ids, queues)) = extension {
            let meta = response.metadata_mut();
            if let Ok(v) = MetadataValue::try_from(ids) {
                meta.insert(HEADER_OFFSET_MSG_IDS, v);
            }
            if let Ok(v) = MetadataValue::try_from(queues) {
                meta.insert(HEADER_QUEUE_IDS, v);
            }
        }
        Ok(response)
    }

    async fn query_assignment(
        &self,
        request: Request<v2::QueryAssignmentRequest>,
    ) -> Result<Response<v2::QueryAssignmentResponse>, Status> {
        let start = Instant::now();
        let result = async {
            let meta = self.meta(&request)?;
            let req = request.get_ref();
            let group = namespace::stored_name(req.group.as_ref(), &meta.namespace);
            validate::group(&group)?;
            let group_cfg = self.broker.group_or_create(&group)?;
            let asked = req.topic.clone().unwrap_or_default();
            let topic = v2::Resource {
                resource_namespace: String::new(),
                name: namespace::stored_name(Some(&asked), &meta.namespace),
            };
            validate::topic(&topic.name)?;
            // The queues clients read: in a cluster, every group's reader (broker id 0) from
            // the name servers; alone, this broker's.
            let route = if let Some(queues) = self.broker.cluster_route(&topic).await {
                queues
                    .into_iter()
                    .filter(|q| q.broker.as_ref().is_some_and(|b| b.id == 0))
                    .collect()
            } else {
                let endpoints = if self.broker.is_pull_consumer(&meta.client_id) {
                    access_point(&self.broker, req.endpoints.as_ref())
                } else {
                    req.endpoints.clone().unwrap_or_default()
                };
                self.broker.route(&topic, endpoints)?
            };
            let mut readable: Vec<v2::MessageQueue> = route
                .into_iter()
                .filter(|q| {
                    matches!(
                        v2::Permission::try_from(q.permission),
                        Ok(v2::Permission::Read | v2::Permission::ReadWrite)
                    )
                })
                .collect();
            if readable.is_empty() {
                return Err(BrokerError::new(Code::Forbidden, "no readable queue"));
            }
            for q in &mut readable {
                q.topic = Some(asked.clone());
            }
            if self.broker.is_pull_consumer(&meta.client_id) {
                return Ok(self.broker.pull_assignments(&meta.client_id, &group, &readable));
            }
            if group_cfg.fifo {
                // FIFO groups: one assignment per readable queue, as the proxy answers.
                return Ok(readable
                    .into_iter()
                    .map(|q| v2::Assignment { message_queue: Some(q) })
                    .collect());
            }
            // Pop consumption takes from every queue of a broker: one assignment per broker,
            // queue id -1 ("any"), as the proxy answers non-FIFO groups.
            let mut seen = std::collections::HashSet::new();
            Ok(readable
                .into_iter()
                .filter(|q| seen.insert(q.broker.as_ref().map(|b| b.name.clone())))
                .map(|mut q| {
                    q.id = -1;
                    v2::Assignment { message_queue: Some(q) }
                })
                .collect())
        }
        .await;
        Ok(self.answered(
            "QueryAssignment",
            start,
            match result {
                Ok(assignments) => v2::QueryAssignmentResponse { status: Some(ok()), assignments },
                Err(e) => v2::QueryAssignmentResponse {
                    status: Some(err_status(&e)),
                    assignments: Vec::new(),
                },
            },
        ))
    }

    type ReceiveMessageStream = BoxStream<v2::ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<v2::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        use v2::receive_message_response::Content;
        let start = Instant::now();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let mut digest = BodyDigest::Md5;
        let result = match meta {
            Ok(meta) => {
                digest = BodyDigest::for_language(&meta.language);
                namespace::wrap_queue(&mut req.group, req.message_queue.as_mut(), &meta.namespace);
                self.broker.receive(&req, &meta.client_id, meta.deadline).await
            }
            Err(e) => Err(e),
        };
        let mut out = Vec::new();
        let offset_ids = result.as_ref().ok().filter(|d| !d.is_empty()).map(|d| {
            let store = self.broker.store();
            d.iter()
                .map(|d| store.offset_msg_id(d.message.commitlog_offset))
                .collect::<Vec<_>>()
                .join(",")
        });
        let code = match &result {
            Ok(d) if d.is_empty() => Code::MessageNotFound,
            Ok(_) => Code::Ok,
            Err(e) => e.code,
        };
        match result {
            Ok(deliveries) if deliveries.is_empty() => {
                out.push(Content::Status(status(Code::MessageNotFound, "no new message")));
            }
            Ok(deliveries) => {
                self.count_out(
                    req.group.as_ref(),
                    req.message_queue.as_ref(),
                    deliveries.iter().map(|d| &d.message),
                );
                out.push(Content::Status(ok()));
                for d in &deliveries {
                    out.push(Content::Message(to_wire(&Delivered {
                        message: &d.message,
                        receipt_handle: Some(d.receipt_handle.clone()),
                        delivery_attempt: d.delivery_attempt,
                        invisible_ms: Some(d.invisible_ms),
                        digest,
                    })));
                }
            }
            Err(e) => out.push(Content::Status(err_status(&e))),
        }
        out.push(Content::DeliveryTimestamp(timestamp(now_millis())));
        self.broker.metrics().rpc("ReceiveMessage", code, true, start.elapsed());
        let items =
            out.into_iter().map(|c| v2::ReceiveMessageResponse { content: Some(c) }).collect();
        let mut response = Response::new(once_stream(items));
        if let Some(v) = offset_ids.and_then(|ids| MetadataValue::try_from(ids).ok()) {
            response.metadata_mut().insert(HEADER_OFFSET_MSG_IDS, v);
        }
        Ok(response)
    }

    async fn ack_message(
        &self,
        request: Request<v2::AckMessageRequest>,
    ) -> Result<Response<v2::AckMessageResponse>, Status> {
        let start = Instant::now();
        let req = request.get_ref();
        let checked = self.meta(&request).and_then(|meta| {
            let group = namespace::stored_name(req.group.as_ref(), &meta.namespace);
            let topic = namespace::stored_name(req.topic.as_ref(), &meta.namespace);
            validate::group(&group)?;
            validate::topic(&topic)?;
            Ok((group, topic))
        });
        let (group, topic) = match checked {
            Ok(gt) => gt,
            Err(e) => {
                return Ok(self.answered(
                    "AckMessage",
                    start,
                    v2::AckMessageResponse { status: Some(err_status(&e)), entries: Vec::new() },
                ));
            }
        };
        let entries: Vec<v2::AckMessageResultEntry> = req
            .entries
            .iter()
            .map(|e| v2::AckMessageResultEntry {
                message_id: e.message_id.clone(),
                receipt_handle: e.receipt_handle.clone(),
                status: Some(
                    self.broker
                        .pop()
                        .ack(&group, &topic, &e.receipt_handle)
                        .map_or_else(|e| err_status(&e), |()| ok()),
                ),
            })
            .collect();
        Ok(self.answered(
            "AckMessage",
            start,
            v2::AckMessageResponse {
                status: Some(summary(entries.iter().filter_map(|e| e.status.as_ref()))),
                entries,
            },
        ))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<v2::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<v2::ForwardMessageToDeadLetterQueueResponse>, Status> {
        let start = Instant::now();
        let st = match self.meta(&request) {
            Ok(meta) => {
                let req = request.get_ref();
                let group = namespace::stored_name(req.group.as_ref(), &meta.namespace);
                let topic = namespace::stored_name(req.topic.as_ref(), &meta.namespace);
                let result = match validate::group(&group).and_then(|()| validate::topic(&topic)) {
                    Ok(()) => {
                        self.broker
                            .forward_to_dead_letter_queue(&group, &topic, &req.receipt_handle)
                            .await
                    }
                    Err(e) => Err(e.into()),
                };
                result.map_or_else(|e| err_status(&e), |()| ok())
            }
            Err(e) => err_status(&e),
        };
        Ok(self.answered(
            "ForwardMessageToDeadLetterQueue",
            start,
            v2::ForwardMessageToDeadLetterQueueResponse { status: Some(st) },
        ))
    }

    type PullMessageStream = BoxStream<v2::PullMessageResponse>;

    async fn pull_message(
        &self,
        request: Request<v2::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        use v2::pull_message_response::Content;
        let start = Instant::now();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let mut digest = BodyDigest::Md5;
        let result = match meta {
            Ok(meta) => {
                digest = BodyDigest::for_language(&meta.language);
                namespace::wrap_queue(&mut req.group, req.message_queue.as_mut(), &meta.namespace);
                self.broker.pull(&req, &meta.client_id, meta.deadline).await
            }
            Err(e) => Err(e),
        };
        // Status first, then the messages, then where to pull next.
        let mut out = Vec::new();
        let code = match &result {
            Ok(Pulled::Found { .. }) => Code::Ok,
            Ok(Pulled::NotFound { .. }) => Code::MessageNotFound,
            Ok(Pulled::IllegalOffset { error, .. }) | Err(error) => error.code,
        };
        match result {
            Ok(Pulled::Found { messages, next_offset }) => {
                self.count_out(req.group.as_ref(), req.message_queue.as_ref(), messages.iter());
                out.push(Content::Status(ok()));
                for m in &messages {
                    out.push(Content::Message(to_wire(&Delivered {
                        message: m,
                        receipt_handle: None,
                        delivery_attempt: m.reconsume_times.saturating_add(1),
                        invisible_ms: None,
                        digest,
                    })));
                }
                out.push(Content::NextOffset(next_offset as i64));
            }
            Ok(Pulled::NotFound { next_offset }) => {
                out.push(Content::Status(status(Code::MessageNotFound, "no new message")));
                out.push(Content::NextOffset(next_offset as i64));
            }
            Ok(Pulled::IllegalOffset { error, next_offset }) => {
                out.push(Content::Status(err_status(&error)));
                out.push(Content::NextOffset(next_offset as i64));
            }
            Err(e) => out.push(Content::Status(err_status(&e))),
        }
        self.broker.metrics().rpc("PullMessage", code, true, start.elapsed());
        let items = out.into_iter().map(|c| v2::PullMessageResponse { content: Some(c) }).collect();
        Ok(Response::new(once_stream(items)))
    }

    async fn update_offset(
        &self,
        request: Request<v2::UpdateOffsetRequest>,
    ) -> Result<Response<v2::UpdateOffsetResponse>, Status> {
        let start = Instant::now();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let st = meta
            .and_then(|meta| {
                namespace::wrap_queue(&mut req.group, req.message_queue.as_mut(), &meta.namespace);
                self.broker.update_offset(&req)
            })
            .map_or_else(|e| err_status(&e), |()| ok());
        Ok(self.answered("UpdateOffset", start, v2::UpdateOffsetResponse { status: Some(st) }))
    }

    async fn get_offset(
        &self,
        request: Request<v2::GetOffsetRequest>,
    ) -> Result<Response<v2::GetOffsetResponse>, Status> {
        let start = Instant::now();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let result = meta.and_then(|meta| {
            namespace::wrap_queue(&mut req.group, req.message_queue.as_mut(), &meta.namespace);
            self.broker.get_offset(&req)
        });
        Ok(self.answered(
            "GetOffset",
            start,
            match result {
                Ok(offset) => v2::GetOffsetResponse { status: Some(ok()), offset: offset as i64 },
                Err(e) => v2::GetOffsetResponse { status: Some(err_status(&e)), offset: 0 },
            },
        ))
    }

    async fn query_offset(
        &self,
        request: Request<v2::QueryOffsetRequest>,
    ) -> Result<Response<v2::QueryOffsetResponse>, Status> {
        let start = Instant::now();
        let meta = self.meta(&request);
        let mut req = request.into_inner();
        let result = meta.and_then(|meta| {
            if let Some(q) = req.message_queue.as_mut() {
                namespace::wrap_resource(&mut q.topic, &meta.namespace);
            }
            self.broker.query_offset(&req)
        });
        Ok(self.answered(
            "QueryOffset",
            start,
            match result {
                Ok(offset) => v2::QueryOffsetResponse { status: Some(ok()), offset: offset as i64 },
                Err(e) => v2::QueryOffsetResponse { status: Some(err_status(&e)), offset: 0 },
            },
        ))
    }

    async fn end_transaction(
        &self,
        request: Request<v2::EndTransactionRequest>,
    ) -> Result<Response<v2::EndTransactionResponse>, Status> {
        let start = Instant::now();
        let st = match self.meta(&request) {
            Ok(meta) => {
                let req = request.get_ref();
                let topic = namespace::stored_name(req.topic.as_ref(), &meta.namespace);
                let id = if req.transaction_id.is_empty() {
                    &req.message_id
                } else {
                    &req.transaction_id
                };
                let resolution = v2::TransactionResolution::try_from(req.resolution)
                    .unwrap_or(v2::TransactionResolution::Unspecified);
                match validate::topic(&topic) {
                    Ok(()) => self.broker.end_transaction(&topic, id, resolution).await,
                    Err(e) => Err(e.into()),
                }
                .map_or_else(|e| err_status(&e), |()| ok())
            }
            Err(e) => err_status(&e),
        };
        Ok(self.answered("EndTransaction", start, v2::EndTransactionResponse { status: Some(st) }))
    }

    type TelemetryStream = BoxStream<v2::TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<Streaming<v2::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        if let Err(e) = self.authenticate(&request) {
            let inbound = request.into_inner();
            return Ok(Response::new(refused_stream(self.broker.clone(), inbound, err_status(&e))));
        }
        let meta = self.meta(&request).map_err(|e| e.to_grpc())?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let broker = self.broker.clone();
        tokio::spawn(async move {
            let stopping = broker.stopping();
            tokio::pin!(stopping);
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = &mut stopping => break,
                };
                let cmd = match next {
                    Ok(Some(cmd)) => cmd,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(client = meta.client_id, error = %e, "telemetry stream ended");
                        break;
                    }
                };
                // Registered by `meta` above; a refusal (expired meanwhile, broker full) shows
                // when the settings are stored.
                let _ = broker.clients().touch(&meta.client_id, &meta.language);
                let Some(Command::Settings(settings)) = cmd.command else {
                    // Thread stack traces and verify results need no answer.
                    continue;
                };
                if settings.pub_sub.is_none() {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "settings must carry publishing or subscription",
                        )))
                        .await;
                    break;
                }
                let group = settings_group(&settings, &meta.namespace)
                    .and_then(|g| broker.group_or_create(&g).ok());
                let reply =
                    merged_settings(&settings, &meta.language, broker.config(), group.as_ref());
                if let Err(e) = broker.clients().set_settings(
                    &meta.client_id,
                    &meta.language,
                    &meta.namespace,
                    settings,
                    tx.clone(),
                ) {
                    let _ = tx
                        .send(Ok(v2::TelemetryCommand {
                            status: Some(err_status(&e)),
                            command: None,
                        }))
                        .await;
                    break;
                }
                let cmd = v2::TelemetryCommand {
                    status: Some(ok()),
                    command: Some(Command::Settings(reply)),
                };
                if tx.send(Ok(cmd)).await.is_err() {
                    break;
                }
            }
            broker.clients().stream_closed(&meta.client_id, &tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn notify_client_termination(
        &self,
        request: Request<v2::NotifyClientTerminationRequest>,
    ) -> Result<Response<v2::NotifyClientTerminationResponse>, Status> {
        let start = Instant::now();
        let st = match self.meta(&request) {
            Ok(meta) => {
                let was = self.broker.clients().remove(&meta.client_id);
                if was.and_then(|c| c.settings).is_some_and(|s| is_consumer(&s)) {
                    self.broker.pop().release_client(&meta.client_id);
                }
                ok()
            }
            Err(e) => err_status(&e),
        };
        Ok(self.answered(
            "NotifyClientTermination",
            start,
            v2::NotifyClientTerminationResponse { status: Some(st) },
        ))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<v2::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<v2::ChangeInvisibleDurationResponse>, Status> {
        let start = Instant::now();
        let req = request.get_ref();
        let result = self.meta(&request).and_then(|meta| {
            let group = &namespace::stored_name(req.group.as_ref(), &meta.namespace);
            let topic = &namespace::stored_name(req.topic.as_ref(), &meta.namespace);
            validate::group(group)?;
            validate::topic(topic)?;
            let ms = change_invisible_ms(req.invisible_duration.as_ref())?;
            self.broker.pop().change_invisible(group, topic, &req.receipt_handle, ms)
        });
        Ok(self.answered(
            "ChangeInvisibleDuration",
            start,
            match result {
                Ok(receipt_handle) => {
                    v2::ChangeInvisibleDurationResponse { status: Some(ok()), receipt_handle }
                }
                Err(e) => v2::ChangeInvisibleDurationResponse {
                    status: Some(err_status(&e)),
                    receipt_handle: String::new(),
                },
            },
        ))
    }

    async fn recall_message(
        &self,
        request: Request<v2::RecallMessageRequest>,
    ) -> Result<Response<v2::RecallMessageResponse>, Status> {
        let start = Instant::now();
        let result = match self.meta(&request) {
            Ok(meta) => {
                let req = request.get_ref();
                let topic = namespace::stored_name(req.topic.as_ref(), &meta.namespace);
                match validate::topic(&topic) {
                    Ok(()) => self.broker.recall(&topic, &req.recall_handle).await,
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        };
        Ok(self.answered(
            "RecallMessage",
            start,
            match result {
                Ok(message_id) => v2::RecallMessageResponse { status: Some(ok()), message_id },
                Err(e) => v2::RecallMessageResponse {
                    status: Some(err_status(&e)),
                    message_id: String::new(),
                },
            },
        ))
    }

    async fn sync_lite_subscription(
        &self,
        request: Request<v2::SyncLiteSubscriptionRequest>,
    ) -> Result<Response<v2::SyncLiteSubscriptionResponse>, Status> {
        let st = match self.authenticate(&request) {
            Ok(()) => status(Code::Unsupported, "lite topics are not supported"),
            Err(e) => err_status(&e),
        };
        Ok(Response::new(v2::SyncLiteSubscriptionResponse { status: Some(st) }))
    }
}

/// A Telemetry stream refused for its credentials, as Apache's proxy refuses one
/// (`GrpcMessagingApplication.telemetry`: every command the client sends goes through the
/// authentication pipeline, and a failure is written as a `TelemetryCommand` carrying only the
/// status, after which the stream completes with gRPC status OK): the client's first command is
/// answered with `status` and the stream ends. A client that sends nothing gets the answer after
/// 10 s, or when the broker stops, so a silent stream holds up neither.
fn refused_stream(
    broker: Broker,
    mut inbound: Streaming<v2::TelemetryCommand>,
    status: v2::Status,
) -> BoxStream<v2::TelemetryCommand> {
    Box::pin(futures_util::stream::once(async move {
        // Whatever the client sent (or a closed stream), the answer is the refusal.
        tokio::select! {
            _ = inbound.message() => {}
            () = broker.stopping() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        Ok(v2::TelemetryCommand { status: Some(status), command: None })
    }))
}

/// The top-level status of a multi-entry answer: the shared code, or `MULTIPLE_RESULTS`.
fn summary<'a>(mut statuses: impl Iterator<Item = &'a v2::Status>) -> v2::Status {
    let Some(first) = statuses.next() else { return ok() };
    if statuses.all(|s| s.code == first.code) {
        first.clone()
    } else {
        status(Code::MultipleResults, "MULTIPLE_RESULTS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(grpc_timeout("23000m"), Some(Duration::from_secs(23)));
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("x"), None);
        assert_eq!(grpc_timeout(""), None);
        assert_eq!(grpc_timeout("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        // More than 8 digits, signs, other units: ignored, never an overflow.
        for bad in ["18446744073709551615H", "123456789S", "-5S", "+5S", "S", "5", "5\u{e9}"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
