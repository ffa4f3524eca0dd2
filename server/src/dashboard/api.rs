//! The JSON API of docs/DASHBOARD.md: each handler one call of the SDK's [`Admin`] (or
//! [`Producer`] for `/api/produce`) against the server's own gRPC port, its answer as JSON.
//!
//! [`Admin`]: orbitmq_core::client::Admin
//! [`Producer`]: orbitmq_core::client::Producer

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use orbitmq_core::client::{GroupOptions, Message, StoredMessage, TopicConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, JsonBody, Name, Params};
use super::{Ctx, series};

type Answer = Result<Response, ApiError>;

// `Answer`s, so handlers end with `ok(&…)` as they end with `Err(…)` elsewhere.
#[allow(clippy::unnecessary_wraps)]
fn ok<T: Serialize>(value: &T) -> Answer {
    Ok(Json(value).into_response())
}

#[allow(clippy::unnecessary_wraps)]
fn created<T: Serialize>(value: &T) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

pub(crate) async fn info(State(ctx): State<Arc<Ctx>>) -> Answer {
    ok(&ctx.info)
}

pub(crate) async fn cluster(State(ctx): State<Arc<Ctx>>) -> Answer {
    ok(&ctx.admin.cluster_list().await?)
}

pub(crate) async fn metrics(State(ctx): State<Arc<Ctx>>) -> Answer {
    let interval_ms = u64::try_from(series::INTERVAL.as_millis()).unwrap_or(u64::MAX);
    ok(&json!({"interval_ms": interval_ms, "points": ctx.series.points()}))
}

// ---------------------------------------------------------------------------------------------
// topics

pub(crate) async fn topics(State(ctx): State<Arc<Ctx>>, q: Params) -> Answer {
    ok(&ctx.admin.list_topics(q.flag("system")?).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTopic {
    name: String,
    read_queues: Option<u32>,
    write_queues: Option<u32>,
    perm: Option<u32>,
    message_type: Option<String>,
}

pub(crate) async fn create_topic(
    State(ctx): State<Arc<Ctx>>,
    JsonBody(t): JsonBody<NewTopic>,
) -> Answer {
    let mut topic = TopicConfig::new(t.name);
    apply(&mut topic, t.read_queues, t.write_queues, t.perm, t.message_type);
    created(&ctx.admin.create_topic(topic).await?)
}

pub(crate) async fn topic(State(ctx): State<Arc<Ctx>>, Name(topic): Name) -> Answer {
    ok(&ctx.admin.topic(&topic).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicChange {
    read_queues: Option<u32>,
    write_queues: Option<u32>,
    perm: Option<u32>,
    message_type: Option<String>,
}

pub(crate) async fn update_topic(
    State(ctx): State<Arc<Ctx>>,
    Name(name): Name,
    JsonBody(c): JsonBody<TopicChange>,
) -> Answer {
    let mut topic = ctx.admin.topic(&name).await?;
    apply(&mut topic, c.read_queues, c.write_queues, c.perm, c.message_type);
    ok(&ctx.admin.update_topic(topic).await?)
}

fn apply(
    t: &mut TopicConfig,
    read_queues: Option<u32>,
    write_queues: Option<u32>,
    perm: Option<u32>,
    message_type: Option<String>,
) {
    t.read_queues = read_queues.unwrap_or(t.read_queues);
    t.write_queues = write_queues.unwrap_or(t.write_queues);
    t.perm = perm.unwrap_or(t.perm);
    if let Some(m) = message_type {
        t.message_type = m.to_ascii_uppercase();
    }
}

pub(crate) async fn topic_status(State(ctx): State<Arc<Ctx>>, Name(topic): Name) -> Answer {
    ok(&ctx.admin.topic_status(&topic).await?)
}

pub(crate) async fn topic_route(State(ctx): State<Arc<Ctx>>, Name(topic): Name) -> Answer {
    ok(&ctx.admin.topic_route(&topic).await?)
}

// ---------------------------------------------------------------------------------------------
// groups

pub(crate) async fn groups(State(ctx): State<Arc<Ctx>>) -> Answer {
    ok(&ctx.admin.list_groups().await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroup {
    name: String,
    fifo: Option<bool>,
    max_delivery_attempts: Option<u32>,
    consume_from: Option<String>,
}

pub(crate) async fn create_group(
    State(ctx): State<Arc<Ctx>>,
    JsonBody(g): JsonBody<NewGroup>,
) -> Answer {
    let options = GroupOptions {
        fifo: g.fifo,
        max_delivery_attempts: g.max_delivery_attempts,
        consume_from: g.consume_from.map(|c| c.to_ascii_lowercase()),
    };
    created(&ctx.admin.create_group(&g.name, options).await?)
}

pub(crate) async fn progress(State(ctx): State<Arc<Ctx>>, Name(group): Name, q: Params) -> Answer {
    ok(&ctx.admin.consumer_progress(&group, q.optional("topic")).await?)
}

pub(crate) async fn members(State(ctx): State<Arc<Ctx>>, Name(group): Name) -> Answer {
    ok(&ctx.admin.group_members(&group).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reset {
    topic: String,
    timestamp: i64,
}

pub(crate) async fn reset(
    State(ctx): State<Arc<Ctx>>,
    Name(group): Name,
    JsonBody(r): JsonBody<Reset>,
) -> Answer {
    if r.timestamp < 0 {
        return Err(ApiError::bad_request("`timestamp` must be ms since the epoch, not negative"));
    }
    ok(&ctx.admin.reset_offset(&group, &r.topic, r.timestamp).await?)
}

// ---------------------------------------------------------------------------------------------
// messages

/// Bytes of a body shown as text or hex; the download has it all.
const PREVIEW: usize = 4096;

/// A message as the console shows it: its body previewed, not whole.
type MessageJson = crate::message_json::MessageJson<ConsoleBody>;

/// The console's body: `"body": {size, text, hex, truncated}`.
#[derive(Debug, Serialize)]
struct ConsoleBody {
    body: Body,
}

#[derive(Debug, Serialize)]
struct Body {
    size: usize,
    text: Option<String>,
    hex: Option<String>,
    truncated: bool,
}

fn body_preview(body: &[u8]) -> Body {
    let truncated = body.len() > PREVIEW;
    if let Ok(text) = std::str::from_utf8(body) {
        let mut end = text.len().min(PREVIEW);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return Body { size: body.len(), text: Some(text[..end].to_owned()), hex: None, truncated };
    }
    let mut hex = String::with_capacity(PREVIEW * 2);
    for b in &body[..body.len().min(PREVIEW)] {
        let _ = write!(hex, "{b:02x}");
    }
    Body { size: body.len(), text: None, hex: Some(hex), truncated }
}

fn message_json(m: StoredMessage) -> MessageJson {
    MessageJson::new(m, |body| ConsoleBody { body: body_preview(body) })
}

fn messages(found: Vec<StoredMessage>) -> Answer {
    ok(&found.into_iter().map(message_json).collect::<Vec<_>>())
}

pub(crate) async fn by_id(State(ctx): State<Arc<Ctx>>, Name(id): Name) -> Answer {
    messages(ctx.admin.query_message_by_id(&id).await?)
}

pub(crate) async fn by_key(State(ctx): State<Arc<Ctx>>, q: Params) -> Answer {
    let (topic, key) = (q.required("topic")?, q.required("key")?);
    let max = q.optional_number("max")?;
    messages(ctx.admin.query_message_by_key(topic, key, None, None, max).await?)
}

/// The message `?topic=&queue=&offset=[&broker=]` names (`broker`: whose queue, through a
/// name server).
async fn at_offset(ctx: &Ctx, q: &Params) -> Result<StoredMessage, ApiError> {
    let topic = q.required("topic")?;
    let (queue, offset) = (q.number("queue")?, q.number("offset")?);
    let broker = q.optional("broker");
    Ok(ctx.admin.query_message_by_offset_on(broker, topic, queue, offset).await?)
}

pub(crate) async fn by_offset(State(ctx): State<Arc<Ctx>>, q: Params) -> Answer {
    ok(&message_json(at_offset(&ctx, &q).await?))
}

pub(crate) async fn body(State(ctx): State<Arc<Ctx>>, q: Params) -> Answer {
    let m = at_offset(&ctx, &q).await?;
    let safe: String = m
        .topic
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let disposition =
        format!("attachment; filename=\"{safe}-{}-{}.bin\"", m.queue_id, m.queue_offset);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        m.body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resend {
    group: String,
    topic: String,
    message_id: String,
}

pub(crate) async fn resend(State(ctx): State<Arc<Ctx>>, JsonBody(r): JsonBody<Resend>) -> Answer {
    ctx.admin.resend_message(&r.group, &r.topic, &r.message_id).await?;
    ok(&json!({"resent": true}))
}

// ---------------------------------------------------------------------------------------------
// produce

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Produce {
    topic: String,
    body: String,
    tag: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

pub(crate) async fn produce(State(ctx): State<Arc<Ctx>>, JsonBody(p): JsonBody<Produce>) -> Answer {
    if p.topic.is_empty() {
        return Err(ApiError::bad_request("`topic` is empty"));
    }
    let mut b = Message::builder(p.topic).body(p.body).keys(p.keys);
    if let Some(tag) = p.tag.filter(|t| !t.is_empty()) {
        b = b.tag(tag);
    }
    for (k, v) in p.properties {
        b = b.property(k, v);
    }
    let receipt = ctx.producer().await?.send(b.build()).await?;
    let answer: Value = json!({
        "message_id": receipt.message_id,
        "topic": receipt.topic,
        "queue_id": receipt.queue_id,
        "offset": receipt.queue_offset,
    });
    ok(&answer)
}

// ---------------------------------------------------------------------------------------------
// everything else

pub(crate) async fn unknown(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API at {} (docs/DASHBOARD.md lists them)", uri.path()))
}

pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "BadRequest",
        format!("{method} is not allowed here (docs/DASHBOARD.md lists the methods)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_previewed_as_text_or_hex_up_to_4_kib() {
        let b = body_preview(b"hi");
        assert_eq!((b.size, b.text.as_deref(), b.hex, b.truncated), (2, Some("hi"), None, false));
        let b = body_preview(&[0xff, 0x00, 0x10]);
        assert_eq!((b.text, b.hex.as_deref(), b.truncated), (None, Some("ff0010"), false));
        let b = body_preview(&vec![0xfe; 5000]);
        assert_eq!((b.hex.map(|h| h.len()), b.truncated), (Some(2 * PREVIEW), true));
        // Cut at a character boundary: never half a character.
        let text = "€".repeat(2000);
        let b = body_preview(text.as_bytes());
        assert_eq!(b.text.map(|t| t.len()), Some(4095));
    }
}
