//! The `MessagingService` handlers, in-process on one long-lived broker: each input is one
//! request, either built from arbitrary fields (names the broker knows, real receipt
//! handles, extreme numbers and times) or the fuzz bytes decoded as that request's protobuf.
//! No input may panic a handler (libFuzzer reports the panic, and debug assertions catch
//! overflow). Telemetry (a bidirectional stream) is not covered.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use orbitmq_core::protocol::v2::messaging_service_server::MessagingService;
use orbitmq_core::protocol::v2::{self};
use orbitmq_fuzz::{
    Fixture, arb_message, arb_resource, duration, filter, fixture, queue, request, timestamp,
};
use prost::Message as _;

/// The request: from the remaining bytes as protobuf, or built.
fn req<T: prost::Message + Default>(
    u: &mut Unstructured<'_>,
    build: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Option<T> {
    if u.ratio(1, 4).ok()? { T::decode(u.bytes(u.len()).ok()?).ok() } else { build(u).ok() }
}

fn one(f: &Fixture, u: &mut Unstructured<'_>) -> Result<()> {
    macro_rules! unary {
        ($method:ident, $build:expr) => {
            if let Some(r) = req(u, $build) {
                f.call(|s| async move { s.$method(request(r)).await.map(drop) });
            }
        };
    }
    match u.int_in_range(0..=14)? {
        0 => unary!(query_route, |u| Ok(v2::QueryRouteRequest {
            topic: Some(arb_resource(u)?),
            endpoints: None
        })),
        1 => unary!(send_message, |u| {
            let n = u.int_in_range(0..=4)?;
            let messages = (0..n).map(|_| arb_message(u)).collect::<Result<_>>()?;
            Ok(v2::SendMessageRequest { messages })
        }),
        2 => {
            if let Some(r) = req(u, |u| {
                Ok(v2::ReceiveMessageRequest {
                    group: Some(arb_resource(u)?),
                    message_queue: Some(queue(u)?),
                    filter_expression: Some(filter(u)?),
                    batch_size: if u.arbitrary()? {
                        u.int_in_range(-1..=40)?
                    } else {
                        u.arbitrary()?
                    },
                    invisible_duration: if u.arbitrary()? { Some(duration(u)?) } else { None },
                    auto_renew: u.arbitrary()?,
                    long_polling_timeout: Some(duration(u)?),
                    attempt_id: if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
                })
            }) {
                f.receive(r);
            }
        }
        3 => unary!(ack_message, |u| {
            let n = u.int_in_range(0..=3)?;
            let entries = (0..n)
                .map(|_| {
                    Ok(v2::AckMessageEntry {
                        message_id: u.arbitrary()?,
                        receipt_handle: f.handle(u)?,
                        lite_topic: None,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(v2::AckMessageRequest {
                group: Some(arb_resource(u)?),
                topic: Some(arb_resource(u)?),
                entries,
            })
        }),
        4 => unary!(change_invisible_duration, |u| Ok(v2::ChangeInvisibleDurationRequest {
            group: Some(arb_resource(u)?),
            topic: Some(arb_resource(u)?),
            receipt_handle: f.handle(u)?,
            invisible_duration: Some(duration(u)?),
            message_id: u.arbitrary()?,
            ..Default::default()
        })),
        5 => unary!(forward_message_to_dead_letter_queue, |u| Ok(
            v2::ForwardMessageToDeadLetterQueueRequest {
                group: Some(arb_resource(u)?),
                topic: Some(arb_resource(u)?),
                receipt_handle: f.handle(u)?,
                message_id: u.arbitrary()?,
                delivery_attempt: u.arbitrary()?,
                max_delivery_attempts: u.arbitrary()?,
                lite_topic: None,
            }
        )),
        6 => {
            if let Some(r) = req(u, |u| {
                Ok(v2::PullMessageRequest {
                    group: Some(arb_resource(u)?),
                    message_queue: Some(queue(u)?),
                    offset: if u.arbitrary()? { u.int_in_range(-1..=5)? } else { u.arbitrary()? },
                    batch_size: u.arbitrary()?,
                    filter_expression: Some(filter(u)?),
                    long_polling_timeout: Some(duration(u)?),
                })
            }) {
                f.call(|s| async move {
                    let mut stream = s.pull_message(request(r)).await?.into_inner();
                    while std::future::poll_fn(|cx| {
                        tonic::codegen::tokio_stream::Stream::poll_next(
                            std::pin::Pin::new(&mut stream),
                            cx,
                        )
                    })
                    .await
                    .is_some()
                    {}
                    Ok(())
                });
            }
        }
        7 => unary!(update_offset, |u| Ok(v2::UpdateOffsetRequest {
            group: Some(arb_resource(u)?),
            message_queue: Some(queue(u)?),
            offset: u.arbitrary()?,
        })),
        8 => unary!(get_offset, |u| Ok(v2::GetOffsetRequest {
            group: Some(arb_resource(u)?),
            message_queue: Some(queue(u)?),
        })),
        9 => unary!(query_offset, |u| Ok(v2::QueryOffsetRequest {
            message_queue: Some(queue(u)?),
            query_offset_policy: u.int_in_range(-1..=3)?,
            timestamp: if u.arbitrary()? { Some(timestamp(u)?) } else { None },
        })),
        10 => unary!(end_transaction, |u| Ok(v2::EndTransactionRequest {
            topic: Some(arb_resource(u)?),
            message_id: u.arbitrary()?,
            transaction_id: u.arbitrary()?,
            resolution: u.int_in_range(-1..=3)?,
            source: u.int_in_range(-1..=3)?,
            trace_context: String::new(),
        })),
        11 => unary!(recall_message, |u| Ok(v2::RecallMessageRequest {
            topic: Some(arb_resource(u)?),
            recall_handle: u.arbitrary()?,
        })),
        12 => unary!(heartbeat, |u| Ok(v2::HeartbeatRequest {
            group: if u.arbitrary()? { Some(arb_resource(u)?) } else { None },
            client_type: u.int_in_range(-1..=6)?,
        })),
        13 => unary!(query_assignment, |u| Ok(v2::QueryAssignmentRequest {
            topic: Some(arb_resource(u)?),
            group: Some(arb_resource(u)?),
            endpoints: None,
        })),
        _ => unary!(notify_client_termination, |u| Ok(v2::NotifyClientTerminationRequest {
            group: if u.arbitrary()? { Some(arb_resource(u)?) } else { None },
        })),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = one(f, &mut Unstructured::new(data));
    // Keep the messages the sends stored encodable: a decoded request is re-encoded.
    let _ = v2::QueryRouteRequest::default().encode_to_vec();
});
