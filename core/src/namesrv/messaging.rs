//! `apache.rocketmq.v2.MessagingService` on the name server: what a client asks of its access
//! point. QueryRoute is answered from the registry (creating an unknown topic on the masters
//! that create topics on first use); `QueryAssignment` and `RecallMessage`, which some official
//! clients send to their access point (PROTOCOL.md §2.2), are passed to a broker with the
//! client's own metadata; Heartbeat, Telemetry and `NotifyClientTermination` are acknowledged.
//! Everything that needs a broker's store is refused with a status saying where to send it.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::broker::BrokerConfig;
use crate::broker::clients::{merged_settings, ok};
use crate::broker::namespace;
use crate::namesrv::NameServer;
use crate::protocol::v2::messaging_service_server::MessagingService;
use crate::protocol::v2::{self, Code, telemetry_command::Command};
use crate::protocol::{HEADER_LOCAL_ROUTE, validate};

/// The name server's client-facing service.
#[derive(Debug, Clone)]
pub(crate) struct Messaging {
    ns: NameServer,
    /// What Telemetry settings are merged with (a broker's defaults).
    defaults: BrokerConfig,
}

impl Messaging {
    pub(crate) fn new(ns: NameServer) -> Self {
        Messaging { ns, defaults: BrokerConfig::default() }
    }
}

fn status(code: Code, message: impl Into<String>) -> v2::Status {
    v2::Status { code: code as i32, message: message.into() }
}

fn header<'a>(meta: &'a MetadataMap, name: &str) -> &'a str {
    meta.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

impl Messaging {
    /// `UNAUTHORIZED` without valid credentials when the name server has some, then
    /// `CLIENT_ID_REQUIRED` without `x-mq-client-id`: what brokers check first, in that order.
    fn check_client(&self, meta: &MetadataMap) -> Result<(), v2::Status> {
        crate::protocol::auth::check(self.ns.credentials(), meta)
            .map_err(|e| status(Code::Unauthorized, e.to_string()))?;
        check_client_id(meta)
    }
}

/// `CLIENT_ID_REQUIRED` without `x-mq-client-id`, as brokers answer.
fn check_client_id(meta: &MetadataMap) -> Result<(), v2::Status> {
    if header(meta, "x-mq-client-id").is_empty() {
        return Err(status(Code::ClientIdRequired, "the x-mq-client-id header is required"));
    }
    Ok(())
}

/// The answer to an RPC only brokers serve.
fn not_here(rpc: &str) -> v2::Status {
    status(
        Code::BadRequest,
        format!(
            "{rpc} goes to a broker, not to a name server: send it to the broker endpoints \
             QueryRoute answers"
        ),
    )
}

/// The client's request to pass on to a broker: its metadata (client id, namespace,
/// signature) kept, so the broker sees the client.
fn forwarded<T>(meta: &MetadataMap, message: T, timeout: std::time::Duration) -> Request<T> {
    let mut req = Request::new(message);
    for name in [
        "x-mq-client-id",
        "x-mq-language",
        "x-mq-protocol",
        "x-mq-client-version",
        "x-mq-namespace",
        "x-mq-date-time",
        "x-mq-session-token",
        "authorization",
    ] {
        if let Some(v) = meta.get(name) {
            req.metadata_mut().insert(name, v.clone());
        }
    }
    req.set_timeout(timeout);
    req
}

impl Messaging {
    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ns.config().broker_call_timeout_ms)
    }

    /// The route of `topic` (a stored name), creating the topic on the masters that create
    /// topics on first use when no broker holds it.
    async fn route(
        &self,
        meta: &MetadataMap,
        topic: &v2::Resource,
    ) -> Result<Vec<v2::MessageQueue>, v2::Status> {
        let queues = self.ns.registry().route(topic);
        if !queues.is_empty() {
            return Ok(queues);
        }
        let creators: Vec<String> = if self.ns.config().auto_create_topics {
            self.ns
                .registry()
                .brokers()
                .filter(|(k, e)| k.broker_id == 0 && e.auto_create_topics)
                .map(|(_, e)| e.address.clone())
                .collect()
        } else {
            Vec::new()
        };
        if creators.is_empty() {
            return Err(status(
                Code::TopicNotFound,
                format!(
                    "topic {:?} is on no live broker (create it with `orbitmq admin topic create`)",
                    topic.name
                ),
            ));
        }
        // Each creating master answers its own route (creating the topic), asked with the
        // local-route marker so it does not turn to the name servers in turn.
        let mut last_error = None;
        for address in creators {
            let mut req = forwarded(
                meta,
                v2::QueryRouteRequest { topic: Some(topic.clone()), endpoints: None },
                self.timeout(),
            );
            req.metadata_mut()
                .insert(HEADER_LOCAL_ROUTE, tonic::metadata::MetadataValue::from_static("1"));
            let answer = match self.ns.peers().messaging(&address) {
                Ok(mut c) => c.query_route(req).await.map(Response::into_inner),
                Err(e) => Err(e),
            };
            match answer {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.code == Code::Ok as i32) => {
                    self.ns.registry().learn_topic(&address, &topic.name, &r.message_queues);
                }
                Ok(r) => last_error = r.status,
                Err(e) => {
                    last_error = Some(status(
                        Code::InternalServerError,
                        format!(
                            "creating topic {:?} on broker {address}: {}",
                            topic.name,
                            e.message()
                        ),
                    ));
                }
            }
        }
        let queues = self.ns.registry().route(topic);
        if queues.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                status(Code::TopicNotFound, format!("topic {:?} is on no live broker", topic.name))
            }));
        }
        tracing::info!(
            topic = topic.name,
            "auto-created topic on the masters that create topics on first use"
        );
        Ok(queues)
    }

    /// A broker to pass a client's request to: the reader (master, or the slave standing in)
    /// of a group holding `topic`, else any live master.
    fn some_broker(&self, topic: &str) -> Option<String> {
        let registry = self.ns.registry();
        let holding = registry
            .replicas(topic)
            .into_iter()
            .find_map(|g| g.first().map(|(_, e)| e.address.clone()));
        holding.or_else(|| {
            registry.brokers().find(|(k, _)| k.broker_id == 0).map(|(_, e)| e.address.clone())
        })
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn one<T: Send + 'static>(item: T) -> BoxStream<T> {
    Box::pin(tokio_stream::iter([Ok(item)]))
}

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn query_route(
        &self,
        request: Request<v2::QueryRouteRequest>,
    ) -> Result<Response<v2::QueryRouteResponse>, Status> {
        let meta = request.metadata();
        let req = request.get_ref();
        let result = async {
            self.check_client(meta)?;
            let ns = header(meta, "x-mq-namespace");
            namespace::validate(ns).map_err(|e| status(e.code, e.message))?;
            let asked = req.topic.clone().unwrap_or_default();
            let name = namespace::stored_name(Some(&asked), ns);
            validate::topic(&name).map_err(|e| {
                let e = crate::broker::BrokerError::from(e);
                status(e.code, e.message)
            })?;
            let stored = v2::Resource { resource_namespace: String::new(), name };
            let mut queues = self.route(meta, &stored).await?;
            for q in &mut queues {
                q.topic = Some(asked.clone());
            }
            Ok(queues)
        }
        .await;
        Ok(Response::new(match result {
            Ok(message_queues) => v2::QueryRouteResponse { status: Some(ok()), message_queues },
            Err(st) => v2::QueryRouteResponse { status: Some(st), message_queues: Vec::new() },
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v2::HeartbeatRequest>,
    ) -> Result<Response<v2::HeartbeatResponse>, Status> {
        let st = self.check_client(request.metadata()).err().unwrap_or_else(ok);
        Ok(Response::new(v2::HeartbeatResponse { status: Some(st) }))
    }

    async fn send_message(
        &self,
        _request: Request<v2::SendMessageRequest>,
    ) -> Result<Response<v2::SendMessageResponse>, Status> {
        Ok(Response::new(v2::SendMessageResponse {
            status: Some(not_here("SendMessage")),
            entries: Vec::new(),
        }))
    }

    async fn query_assignment(
        &self,
        request: Request<v2::QueryAssignmentRequest>,
    ) -> Result<Response<v2::QueryAssignmentResponse>, Status> {
        if let Err(st) = self.check_client(request.metadata()) {
            return Ok(Response::new(v2::QueryAssignmentResponse {
                status: Some(st),
                assignments: Vec::new(),
            }));
        }
        let ns = header(request.metadata(), "x-mq-namespace").to_owned();
        let topic = namespace::stored_name(request.get_ref().topic.as_ref(), &ns);
        let Some(address) = self.some_broker(&topic) else {
            return Ok(Response::new(v2::QueryAssignmentResponse {
                status: Some(status(
                    Code::TopicNotFound,
                    format!("topic {topic:?} is on no live broker"),
                )),
                assignments: Vec::new(),
            }));
        };
        let req = forwarded(request.metadata(), request.get_ref().clone(), self.timeout());
        self.ns.peers().messaging(&address)?.query_assignment(req).await
    }

    type ReceiveMessageStream = BoxStream<v2::ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        _request: Request<v2::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        Ok(Response::new(one(v2::ReceiveMessageResponse {
            content: Some(v2::receive_message_response::Content::Status(not_here(
                "ReceiveMessage",
            ))),
        })))
    }

    async fn ack_message(
        &self,
        _request: Request<v2::AckMessageRequest>,
    ) -> Result<Response<v2::AckMessageResponse>, Status> {
        Ok(Response::new(v2::AckMessageResponse {
            status: Some(not_here("AckMessage")),
            entries: Vec::new(),
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        _request: Request<v2::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<v2::ForwardMessageToDeadLetterQueueResponse>, Status> {
        Ok(Response::new(v2::ForwardMessageToDeadLetterQueueResponse {
            status: Some(not_here("ForwardMessageToDeadLetterQueue")),
        }))
    }

    type PullMessageStream = BoxStream<v2::PullMessageResponse>;

    async fn pull_message(
        &self,
        _request: Request<v2::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        Ok(Response::new(one(v2::PullMessageResponse {
            content: Some(v2::pull_message_response::Content::Status(not_here("PullMessage"))),
        })))
    }

    async fn update_offset(
        &self,
        _request: Request<v2::UpdateOffsetRequest>,
    ) -> Result<Response<v2::UpdateOffsetResponse>, Status> {
        Ok(Response::new(v2::UpdateOffsetResponse { status: Some(not_here("UpdateOffset")) }))
    }

    async fn get_offset(
        &self,
        _request: Request<v2::GetOffsetRequest>,
    ) -> Result<Response<v2::GetOffsetResponse>, Status> {
        Ok(Response::new(v2::GetOffsetResponse { status: Some(not_here("GetOffset")), offset: 0 }))
    }

    async fn query_offset(
        &self,
        _request: Request<v2::QueryOffsetRequest>,
    ) -> Result<Response<v2::QueryOffsetResponse>, Status> {
        Ok(Response::new(v2::QueryOffsetResponse {
            status: Some(not_here("QueryOffset")),
            offset: 0,
        }))
    }

    async fn end_transaction(
        &self,
        _request: Request<v2::EndTransactionRequest>,
    ) -> Result<Response<v2::EndTransactionResponse>, Status> {
        Ok(Response::new(v2::EndTransactionResponse { status: Some(not_here("EndTransaction")) }))
    }

    type TelemetryStream = BoxStream<v2::TelemetryCommand>;

    /// Acknowledges each Settings with the merged settings a broker would answer (clients
    /// that open their session at the access point wait for it), and nothing else.
    async fn telemetry(
        &self,
        request: Request<Streaming<v2::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        if let Err(st) = self.check_client(request.metadata()) {
            return Err(if st.code == Code::Unauthorized as i32 {
                Status::unauthenticated(st.message)
            } else {
                Status::invalid_argument(st.message)
            });
        }
        let language = header(request.metadata(), "x-mq-language").to_owned();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let defaults = self.defaults.clone();
        tokio::spawn(async move {
            while let Ok(Some(cmd)) = inbound.message().await {
                let Some(Command::Settings(settings)) = cmd.command else { continue };
                if settings.pub_sub.is_none() {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "settings must carry publishing or subscription",
                        )))
                        .await;
                    break;
                }
                let reply = merged_settings(&settings, &language, &defaults, None);
                let cmd = v2::TelemetryCommand {
                    status: Some(ok()),
                    command: Some(Command::Settings(reply)),
                };
                if tx.send(Ok(cmd)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn notify_client_termination(
        &self,
        request: Request<v2::NotifyClientTerminationRequest>,
    ) -> Result<Response<v2::NotifyClientTerminationResponse>, Status> {
        let st = self.check_client(request.metadata()).err().unwrap_or_else(ok);
        Ok(Response::new(v2::NotifyClientTerminationResponse { status: Some(st) }))
    }

    async fn change_invisible_duration(
        &self,
        _request: Request<v2::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<v2::ChangeInvisibleDurationResponse>, Status> {
        Ok(Response::new(v2::ChangeInvisibleDurationResponse {
            status: Some(not_here("ChangeInvisibleDuration")),
            receipt_handle: String::new(),
        }))
    }

    /// Clients send `RecallMessage` to their access point: passed to the master of the group
    /// the recall handle names.
    async fn recall_message(
        &self,
        request: Request<v2::RecallMessageRequest>,
    ) -> Result<Response<v2::RecallMessageResponse>, Status> {
        let answer = |st: v2::Status| {
            Ok(Response::new(v2::RecallMessageResponse {
                status: Some(st),
                message_id: String::new(),
            }))
        };
        if let Err(st) = self.check_client(request.metadata()) {
            return answer(st);
        }
        let Some(broker) =
            crate::broker::timer::recall_handle_broker(&request.get_ref().recall_handle)
        else {
            return answer(status(
                Code::BadRequest,
                format!("recall handle {:?} is not valid", request.get_ref().recall_handle),
            ));
        };
        let Some(address) = self.ns.registry().master(&broker).map(|m| m.address.clone()) else {
            return answer(status(
                Code::NotFound,
                format!(
                    "the master of broker {broker:?}, which holds the delay message, is not live"
                ),
            ));
        };
        let req = forwarded(request.metadata(), request.get_ref().clone(), self.timeout());
        self.ns.peers().messaging(&address)?.recall_message(req).await
    }

    async fn sync_lite_subscription(
        &self,
        _request: Request<v2::SyncLiteSubscriptionRequest>,
    ) -> Result<Response<v2::SyncLiteSubscriptionResponse>, Status> {
        Ok(Response::new(v2::SyncLiteSubscriptionResponse {
            status: Some(status(Code::Unsupported, "lite topics are not supported")),
        }))
    }
}
