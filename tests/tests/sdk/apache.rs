//! What the SDK says against a server that lacks a feature the way Apache RocketMQ 5.3.3's
//! proxy lacks it (as `tests/compat/sdk-vs-apache.sh` sees it): a fake `MessagingService` that
//! answers like the proxy where it matters and `UNIMPLEMENTED` elsewhere.

use std::time::Duration;

use orbitmq_core::client::{ClientConfig, ErrorKind, PullConsumer};
use orbitmq_core::protocol::v2::messaging_service_server::{
    MessagingService, MessagingServiceServer,
};
use orbitmq_core::protocol::v2::{self, telemetry_command::Command};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Answers Telemetry as Apache's proxy does: a `PULL_CONSUMER`'s settings are refused with
/// gRPC `INTERNAL` (its `ClientActivity` knows no such client type); everything else is
/// `UNIMPLEMENTED`.
struct ApacheLike;

type Stream<T> = ReceiverStream<Result<T, Status>>;

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl MessagingService for ApacheLike {
    async fn query_route(
        &self,
        _: Request<v2::QueryRouteRequest>,
    ) -> Result<Response<v2::QueryRouteResponse>, Status> {
        unimplemented()
    }
    async fn heartbeat(
        &self,
        _: Request<v2::HeartbeatRequest>,
    ) -> Result<Response<v2::HeartbeatResponse>, Status> {
        unimplemented()
    }
    async fn send_message(
        &self,
        _: Request<v2::SendMessageRequest>,
    ) -> Result<Response<v2::SendMessageResponse>, Status> {
        unimplemented()
    }
    async fn query_assignment(
        &self,
        _: Request<v2::QueryAssignmentRequest>,
    ) -> Result<Response<v2::QueryAssignmentResponse>, Status> {
        unimplemented()
    }
    type ReceiveMessageStream = Stream<v2::ReceiveMessageResponse>;
    async fn receive_message(
        &self,
        _: Request<v2::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        unimplemented()
    }
    async fn ack_message(
        &self,
        _: Request<v2::AckMessageRequest>,
    ) -> Result<Response<v2::AckMessageResponse>, Status> {
        unimplemented()
    }
    async fn forward_message_to_dead_letter_queue(
        &self,
        _: Request<v2::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<v2::ForwardMessageToDeadLetterQueueResponse>, Status> {
        unimplemented()
    }
    type PullMessageStream = Stream<v2::PullMessageResponse>;
    async fn pull_message(
        &self,
        _: Request<v2::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        unimplemented()
    }
    async fn update_offset(
        &self,
        _: Request<v2::UpdateOffsetRequest>,
    ) -> Result<Response<v2::UpdateOffsetResponse>, Status> {
        unimplemented()
    }
    async fn get_offset(
        &self,
        _: Request<v2::GetOffsetRequest>,
    ) -> Result<Response<v2::GetOffsetResponse>, Status> {
        unimplemented()
    }
    async fn query_offset(
        &self,
        _: Request<v2::QueryOffsetRequest>,
    ) -> Result<Response<v2::QueryOffsetResponse>, Status> {
        unimplemented()
    }
    async fn end_transaction(
        &self,
        _: Request<v2::EndTransactionRequest>,
    ) -> Result<Response<v2::EndTransactionResponse>, Status> {
        unimplemented()
    }
    type TelemetryStream = Stream<v2::TelemetryCommand>;
    async fn telemetry(
        &self,
        request: Request<Streaming<v2::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        if let Ok(Some(v2::TelemetryCommand { command: Some(Command::Settings(s)), .. })) =
            inbound.message().await
            && s.client_type == Some(v2::ClientType::PullConsumer as i32)
        {
            let refused = Status::internal(
                "process client telemetryCommand failed. Client type is not consumer, type: \
                 PULL_CONSUMER",
            );
            tx.send(Err(refused)).await.ok();
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }
    async fn notify_client_termination(
        &self,
        _: Request<v2::NotifyClientTerminationRequest>,
    ) -> Result<Response<v2::NotifyClientTerminationResponse>, Status> {
        unimplemented()
    }
    async fn change_invisible_duration(
        &self,
        _: Request<v2::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<v2::ChangeInvisibleDurationResponse>, Status> {
        unimplemented()
    }
    async fn recall_message(
        &self,
        _: Request<v2::RecallMessageRequest>,
    ) -> Result<Response<v2::RecallMessageResponse>, Status> {
        unimplemented()
    }
    async fn sync_lite_subscription(
        &self,
        _: Request<v2::SyncLiteSubscriptionRequest>,
    ) -> Result<Response<v2::SyncLiteSubscriptionResponse>, Status> {
        unimplemented()
    }
}

/// Serves [`ApacheLike`] on a free 127.0.0.1 port; returns the port's address.
async fn apache_like() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if tx.send(Ok::<_, std::io::Error>(stream)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MessagingServiceServer::new(ApacheLike))
            .serve_with_incoming(ReceiverStream::new(rx)),
    );
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_consumer_refused_by_apaches_proxy_is_unsupported() {
    let endpoint = apache_like().await;
    let mut config = ClientConfig::new(endpoint);
    config.request_timeout = Duration::from_secs(5);
    let c = PullConsumer::builder(config, "g").build().unwrap();
    let e = c.start().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("does not support pull consumers"), "{e}");
    assert!(e.message().contains("PULL_CONSUMER"), "Apache's own words are kept: {e}");
    let e = c.poll(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "poll: {e}");
    c.shutdown().await;
}
