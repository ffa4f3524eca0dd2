//! ReceiveMessage: validate, then hand out messages through `pop`, long-polling (woken by the
//! ConsumeQueues growing or by an invisible message coming due) until the polling time ends.

use std::time::Duration;

use futures_util::future::{FutureExt, select_all};

use crate::broker::error::{BrokerError, Result};
use crate::broker::pop::{AUTO_RENEW_INVISIBLE_MS, Delivery, ReceiveSpec};
use crate::broker::topics::PERM_READ;
use crate::broker::{Broker, validate};
use crate::protocol::time::duration_ms;
use crate::protocol::v2::{self, Code, FilterType, settings::PubSub};
use crate::storage::TagFilter;
use crate::storage::message::now_millis;

/// Most messages one receive hands out.
pub const MAX_BATCH: usize = 32;
/// Shortest invisible time a simple consumer may ask for, ms.
pub const MIN_INVISIBLE_MS: i64 = 10_000;
/// Longest invisible time, ms.
pub const MAX_INVISIBLE_MS: i64 = 12 * 3600 * 1000;
/// Long polling lasts at least this long…
pub const MIN_POLLING: Duration = Duration::from_secs(5);
/// …and at most this long.
pub const MAX_POLLING: Duration = Duration::from_secs(20);

impl Broker {
    /// Serves one ReceiveMessage. `deadline` is what is left of the call's gRPC deadline.
    pub async fn receive(
        &self,
        req: &v2::ReceiveMessageRequest,
        client_id: &str,
        deadline: Option<Duration>,
    ) -> Result<Vec<Delivery>> {
        let group = req.group.as_ref().map(|g| g.name.as_str()).unwrap_or_default();
        validate::group(group)?;
        let topic = req
            .message_queue
            .as_ref()
            .and_then(|q| q.topic.as_ref())
            .map(|t| t.name.as_str())
            .unwrap_or_default();
        validate::topic(topic)?;
        let group_cfg = self.group_or_create(group)?;
        let cfg = self.topic_or_create(topic)?;
        if cfg.perm & PERM_READ == 0 {
            return Err(BrokerError::new(
                Code::Forbidden,
                format!("topic {topic:?} is not readable"),
            ));
        }
        let filter = filter(req.filter_expression.as_ref())?;
        let (batch, invisible_ms) = batch_and_invisible(req)?;
        let polling = self.polling_time(req.long_polling_timeout.as_ref(), client_id, deadline)?;
        let spec = ReceiveSpec {
            group,
            topic,
            read_queues: cfg.read_queues,
            filter: &filter,
            batch,
            invisible_ms,
            auto_renew_client: req.auto_renew.then_some(client_id),
            max_attempts: group_cfg.max_delivery_attempts.max(1),
            fifo: group_cfg.fifo,
            attempt_id: req.attempt_id.as_deref(),
            max_inflight: self.config().max_inflight_per_group,
        };
        let clients = self.clients();
        let alive = |c: &str| clients.is_alive(c);
        let until = tokio::time::Instant::now() + polling;
        // Taken before the first wait, held until the answer.
        let mut parked = None;
        loop {
            let changed = self.pop().changed();
            let got = self.pop().receive(&spec, &alive)?;
            if !got.dead.is_empty() {
                // Failures are retried by the background sweep.
                let _ = self.move_to_dead_letter_queue(got.dead).await;
            }
            let now = tokio::time::Instant::now();
            if !got.deliveries.is_empty() || now >= until || self.is_stopping() {
                return Ok(got.deliveries);
            }
            if parked.is_none() {
                parked = Some(self.park()?);
            }
            // Sleep until a queue grows, an invisible message comes due, or polling ends.
            let mut wake = until;
            if let Some(visible_at) = self.pop().next_visible(group, topic) {
                let ms = u64::try_from(visible_at.saturating_sub(now_millis())).unwrap_or(0);
                wake = wake.min(now + Duration::from_millis(ms));
            }
            let left = wake.saturating_duration_since(now);
            let mut waits: Vec<_> = self
                .pop()
                .next_offsets(group, topic, cfg.read_queues, spec.fifo)
                .into_iter()
                .map(|(q, next)| {
                    let store = self.store().clone();
                    let topic = topic.to_owned();
                    async move { store.wait_for(&topic, q, next, left).await }.boxed()
                })
                .collect();
            waits.push(
                async move {
                    tokio::time::sleep(left).await;
                    Ok(false)
                }
                .boxed(),
            );
            waits.push(
                async move {
                    changed.await;
                    Ok(true)
                }
                .boxed(),
            );
            let stopping = self.stopping();
            waits.push(
                async move {
                    stopping.await;
                    Ok(false)
                }
                .boxed(),
            );
            let _ = select_all(waits).await;
            // A wake that was due at once (a FIFO read-ahead still filling) must not keep this
            // worker from the acks that would free a message group.
            tokio::task::yield_now().await;
        }
    }

    /// How long a long-polling read may wait: what the request asks (else the client's
    /// settings, else the most), clamped to [`MIN_POLLING`, `MAX_POLLING`] and ended early
    /// enough to answer within the call's gRPC deadline (`ILLEGAL_POLLING_TIME` when that
    /// leaves too little).
    pub(crate) fn polling_time(
        &self,
        asked: Option<&prost_types::Duration>,
        client_id: &str,
        deadline: Option<Duration>,
    ) -> Result<Duration> {
        let asked = asked
            .map(|d| Duration::from_millis(duration_ms(d) as u64))
            .or_else(|| {
                let settings = self.clients().settings(client_id)?;
                match settings.pub_sub {
                    Some(PubSub::Subscription(s)) => s
                        .long_polling_timeout
                        .map(|d| Duration::from_millis(duration_ms(&d) as u64)),
                    _ => None,
                }
            })
            .unwrap_or(MAX_POLLING)
            .clamp(MIN_POLLING, MAX_POLLING);
        match deadline {
            None => Ok(asked),
            Some(left) if left < MIN_POLLING => Err(BrokerError::new(
                Code::IllegalPollingTime,
                format!(
                    "deadline time remaining ({} ms) is not enough for polling",
                    left.as_millis()
                ),
            )),
            // Answer before the client gives up on the call, or the batch is lost.
            Some(left) => Ok(asked.min(left.saturating_sub(Duration::from_millis(1500)))),
        }
    }
}

/// The batch size (capped) and invisible time a receive asks for, checked.
fn batch_and_invisible(req: &v2::ReceiveMessageRequest) -> Result<(usize, i64)> {
    let batch = usize::try_from(req.batch_size)
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| {
            BrokerError::new(Code::BadRequest, format!("batch_size {} must be > 0", req.batch_size))
        })?
        .min(MAX_BATCH);
    let invisible_ms = if req.auto_renew {
        // The broker renews the message while its consumer holds it, so the duration only sets
        // the first window: kept within the limits rather than refused (the proxy ignores it).
        req.invisible_duration
            .as_ref()
            .map_or(AUTO_RENEW_INVISIBLE_MS, duration_ms)
            .clamp(MIN_INVISIBLE_MS, MAX_INVISIBLE_MS)
    } else {
        let ms = req.invisible_duration.as_ref().map(duration_ms).ok_or_else(|| {
            BrokerError::new(
                Code::IllegalInvisibleTime,
                "invisible_duration is required unless auto_renew is set",
            )
        })?;
        if !(MIN_INVISIBLE_MS..=MAX_INVISIBLE_MS).contains(&ms) {
            return Err(BrokerError::new(
                Code::IllegalInvisibleTime,
                format!(
                    "invisible_duration {ms} ms is outside [{MIN_INVISIBLE_MS}, {MAX_INVISIBLE_MS}] ms"
                ),
            ));
        }
        ms
    };
    Ok((batch, invisible_ms))
}

/// The tag filter of a request's filter expression (SQL92 is not supported).
pub(crate) fn filter(expr: Option<&v2::FilterExpression>) -> Result<TagFilter> {
    let Some(expr) = expr else { return Ok(TagFilter::All) };
    match FilterType::try_from(expr.r#type).unwrap_or(FilterType::Unspecified) {
        FilterType::Tag | FilterType::Unspecified => {
            if expr.expression.chars().any(char::is_control) {
                return Err(BrokerError::new(
                    Code::IllegalFilterExpression,
                    "tag expression contains control characters",
                ));
            }
            Ok(TagFilter::parse(&expr.expression))
        }
        FilterType::Sql => Err(BrokerError::new(
            Code::Unsupported,
            "SQL92 filter expressions are not supported; use tags",
        )),
    }
}
