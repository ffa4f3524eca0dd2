//! Pop consumption as simple and push consumers share it: `ReceiveMessage` on one queue (or "any
//! queue" of a broker), `AckMessage`, `ChangeInvisibleDuration` and
//! `ForwardMessageToDeadLetterQueue`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{FilterExpression, MessageView};
use crate::client::session::{Session, endpoint_of};
use crate::protocol::HEADER_OFFSET_MSG_IDS;
use crate::protocol::time::from_std;
use crate::protocol::v2::{self, receive_message_response::Content};

/// One ReceiveMessage.
pub(crate) struct Receive<'a> {
    /// The queue (its topic already a resource of the session's namespace); id -1 is any
    /// queue of its broker.
    pub(crate) queue: v2::MessageQueue,
    pub(crate) filter: &'a FilterExpression,
    pub(crate) batch: u32,
    /// `None` with `auto_renew`: the server's own invisible time, renewed while the client
    /// lives.
    pub(crate) invisible: Option<Duration>,
    pub(crate) auto_renew: bool,
    /// Long polling time.
    pub(crate) wait: Duration,
}

/// Receives up to `r.batch` messages from `r.queue`'s broker; an empty list when the long
/// poll ended without any.
pub(crate) async fn receive(s: &Session, r: Receive<'_>) -> Result<Vec<MessageView>> {
    let endpoint = endpoint_of(&r.queue).ok_or_else(|| {
        Error::new(ErrorKind::Internal, "a route names a broker without an address")
    })?;
    let req = v2::ReceiveMessageRequest {
        group: s.group_resource(),
        message_queue: Some(r.queue),
        filter_expression: Some(r.filter.to_wire()),
        batch_size: i32::try_from(r.batch).unwrap_or(32),
        invisible_duration: r.invisible.map(from_std),
        auto_renew: r.auto_renew,
        long_polling_timeout: Some(from_std(r.wait)),
        attempt_id: None,
    };
    let wait = r.wait;
    let response = s
        .rpc
        .call_response("receive", &endpoint, wait, req, |mut c, r| async move {
            c.receive_message(r).await
        })
        .await?;
    let offset_ids = response
        .metadata()
        .get(HEADER_OFFSET_MSG_IDS)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>());
    let mut stream = response.into_inner();
    let from: Arc<str> = Arc::from(endpoint.as_str());
    // One deadline for the whole stream (a timer per item would cost every message).
    let collect = async {
        let mut out = Vec::new();
        while let Some(item) = stream.message().await? {
            match item.content {
                Some(Content::Status(st)) => {
                    // MESSAGE_NOT_FOUND after a long poll is an empty answer, not a failure.
                    let code = v2::Code::try_from(st.code).unwrap_or(v2::Code::Unspecified);
                    if code != v2::Code::MessageNotFound
                        && let Some(e) = Error::from_status(&st)
                    {
                        return Err(e);
                    }
                }
                Some(Content::Message(m)) => out.push(MessageView::from_wire(m, &from)?),
                Some(Content::DeliveryTimestamp(_)) | None => {}
            }
        }
        Ok(out)
    };
    let deadline = s.rpc.config().request_timeout + wait;
    let mut out = match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(e.with_operation("receive").with_endpoint(endpoint)),
        Err(_) => {
            return Err(Error::new(ErrorKind::Timeout, "the receive stream did not end in time")
                .with_operation("receive")
                .with_endpoint(endpoint));
        }
    };
    if let Some(ids) = offset_ids.filter(|ids| ids.len() == out.len()) {
        for (m, id) in out.iter_mut().zip(ids) {
            m.offset_msg_id = Some(id);
        }
    }
    Ok(out)
}

/// Acknowledges `message`.
pub(crate) async fn ack(s: &Session, message: &MessageView) -> Result<()> {
    ack_batch(s, std::slice::from_ref(message)).await
}

/// Acknowledges `messages`: one AckMessage per endpoint and topic they came from, with an
/// entry each. Stops at the first request that fails, or the first entry the server refused.
pub(crate) async fn ack_batch(s: &Session, messages: &[MessageView]) -> Result<()> {
    if messages.iter().any(|m| m.receipt_handle.is_empty()) {
        return Err(Error::bad_request("a message has no receipt handle (was it received here?)")
            .with_operation("ack"));
    }
    let mut requests: BTreeMap<(&str, &str), Vec<v2::AckMessageEntry>> = BTreeMap::new();
    for m in messages {
        requests.entry((&*m.endpoint, m.topic.as_str())).or_default().push(v2::AckMessageEntry {
            message_id: m.message_id.clone(),
            receipt_handle: m.receipt_handle.clone(),
            lite_topic: None,
        });
    }
    for ((endpoint, topic), entries) in requests {
        let req = v2::AckMessageRequest {
            group: s.group_resource(),
            topic: Some(s.resource(topic)),
            entries,
        };
        let resp =
            s.rpc
                .call("ack", endpoint, Duration::ZERO, req, |mut c, r| async move {
                    c.ack_message(r).await
                })
                .await?;
        // The entries' statuses, or the request's when the server answered none.
        let failed = if resp.entries.is_empty() {
            resp.status.as_ref().and_then(Error::from_status)
        } else {
            resp.entries.iter().find_map(|e| e.status.as_ref().and_then(Error::from_status))
        };
        if let Some(e) = failed {
            return Err(e.with_operation("ack").with_endpoint(endpoint));
        }
    }
    Ok(())
}

/// Makes `message` invisible for `duration` from now; returns its new receipt handle.
pub(crate) async fn change_invisible(
    s: &Session,
    message: &MessageView,
    duration: Duration,
) -> Result<String> {
    let req = v2::ChangeInvisibleDurationRequest {
        group: s.group_resource(),
        topic: Some(s.resource(&message.topic)),
        receipt_handle: message.receipt_handle.clone(),
        invisible_duration: Some(from_std(duration)),
        message_id: message.message_id.clone(),
        lite_topic: None,
        suspend: None,
    };
    let resp = s
        .rpc
        .call(
            "change invisible duration",
            &message.endpoint,
            Duration::ZERO,
            req,
            |mut c, r| async move { c.change_invisible_duration(r).await },
        )
        .await?;
    if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
        return Err(e
            .with_operation("change invisible duration")
            .with_endpoint(&*message.endpoint));
    }
    Ok(resp.receipt_handle)
}

/// Moves `message` to the group's dead-letter queue.
pub(crate) async fn forward_to_dlq(
    s: &Session,
    message: &MessageView,
    max_attempts: u32,
) -> Result<()> {
    let req = v2::ForwardMessageToDeadLetterQueueRequest {
        group: s.group_resource(),
        topic: Some(s.resource(&message.topic)),
        receipt_handle: message.receipt_handle.clone(),
        message_id: message.message_id.clone(),
        delivery_attempt: i32::try_from(message.delivery_attempt).unwrap_or(i32::MAX),
        max_delivery_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
        lite_topic: None,
    };
    let resp = s
        .rpc
        .call("forward to DLQ", &message.endpoint, Duration::ZERO, req, |mut c, r| async move {
            c.forward_message_to_dead_letter_queue(r).await
        })
        .await?;
    match resp.status.as_ref().and_then(Error::from_status) {
        Some(e) => Err(e.with_operation("forward to DLQ").with_endpoint(&*message.endpoint)),
        None => Ok(()),
    }
}
