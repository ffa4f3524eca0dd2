//! RocketMQ's rules for names and message fields, as the reference proxy checks them
//! (`GrpcValidator`, `SendMessageActivity`, `Validators`). Each rule answers its own RocketMQ
//! code. The broker checks every request with them before any state changes; the client SDK
//! checks every message with them before any network call, so a bad message fails the same way
//! against either.

use std::collections::HashMap;

use crate::protocol::v2::Code;

/// A value that breaks a rule: the RocketMQ code for it, and what is wrong, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The RocketMQ status code a server answers for it.
    pub code: Code,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// A broken rule: `code` and why.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Invalid { code, message: message.into() }
    }
}

/// The result of a check.
pub type Result<T> = std::result::Result<T, Invalid>;

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 127;
/// Longest consumer group name.
pub const MAX_GROUP_LEN: usize = 120;
/// A message group must be shorter than this many bytes.
pub const MAX_MESSAGE_GROUP_SIZE: usize = 64;
/// Most user properties on one message.
pub const MAX_USER_PROPERTIES: usize = 128;
/// Most bytes of user properties, tag and keys on one message.
pub const MAX_USER_PROPERTY_SIZE: usize = 16 * 1024;

/// Property names the broker itself uses; a user property may not take one
/// (RocketMQ's `MessageConst.STRING_HASH_SET`).
pub const RESERVED_PROPERTIES: &[&str] = &[
    "TRACE_ON",
    "MSG_REGION",
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_QUEUE_OFFSET",
    "TIMER_DELAY_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELIVER_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_OUT_MS",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DEL_MS",
    "TIMER_DELAY_LEVEL",
    "__BORNHOST",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "__CRC32#",
    // Also system-owned, though not in that set: the message group and trace context.
    "__SHARDINGKEY",
    "TRACE_CONTEXT",
];

/// Topics the broker owns; clients may not send to or consume them directly.
fn is_system_topic(name: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRACE_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
    ];
    SYSTEM.contains(&name) || name.starts_with("rmq_sys_") || name.starts_with("RMQ_SYS_")
}

fn valid_chars(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(&b))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A topic name a client may use.
pub fn topic(name: &str) -> Result<()> {
    let bad = |m: String| Err(Invalid::new(Code::IllegalTopic, m));
    if name.trim().is_empty() {
        return bad("topic name is empty".into());
    }
    if name.len() > MAX_TOPIC_LEN {
        return bad(format!("topic name {name:?} is longer than {MAX_TOPIC_LEN} characters"));
    }
    if !valid_chars(name) {
        return bad(format!(
            "topic name {name:?} may only hold letters, digits, '%', '|', '_' and '-'"
        ));
    }
    if is_system_topic(name) {
        return bad(format!("topic {name:?} is a system topic"));
    }
    Ok(())
}

/// A consumer group name a client may use.
pub fn group(name: &str) -> Result<()> {
    let bad = |m: String| Err(Invalid::new(Code::IllegalConsumerGroup, m));
    if name.trim().is_empty() {
        return bad("consumer group name is empty".into());
    }
    if name.len() > MAX_GROUP_LEN {
        return bad(format!("consumer group {name:?} is longer than {MAX_GROUP_LEN} characters"));
    }
    if !valid_chars(name) {
        return bad(format!(
            "consumer group {name:?} may only hold letters, digits, '%', '|', '_' and '-'"
        ));
    }
    if name.starts_with("CID_RMQ_SYS_") || name.starts_with("rmq_sys_") {
        return bad(format!("consumer group {name:?} is a system group"));
    }
    Ok(())
}

/// A namespace (empty means none): at most 64 letters, digits, '_' or '-'.
pub fn namespace(namespace: &str) -> Result<()> {
    if namespace.len() > 64
        || !namespace.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Invalid::new(
            Code::BadRequest,
            format!("namespace {namespace:?} must be at most 64 letters, digits, '_' or '-'"),
        ));
    }
    Ok(())
}

/// A message tag (empty means "no tag").
pub fn tag(tag: &str) -> Result<()> {
    let bad = |m: &str| Err(Invalid::new(Code::IllegalMessageTag, m));
    if tag.is_empty() {
        return Ok(());
    }
    if tag.trim().is_empty() {
        return bad("tag cannot be whitespace only");
    }
    if tag.contains('|') {
        return bad("tag cannot contain '|'");
    }
    if has_control(tag) {
        return bad("tag cannot contain control characters");
    }
    Ok(())
}

/// A message key.
pub fn key(key: &str) -> Result<()> {
    if !key.is_empty() && key.trim().is_empty() {
        return Err(Invalid::new(Code::IllegalMessageKey, "key cannot be whitespace only"));
    }
    if has_control(key) {
        return Err(Invalid::new(Code::IllegalMessageKey, "key cannot contain control characters"));
    }
    Ok(())
}

/// A message group (FIFO sharding key); empty means none.
pub fn message_group(group: &str) -> Result<()> {
    let bad = |m: String| Err(Invalid::new(Code::IllegalMessageGroup, m));
    if group.is_empty() {
        return Ok(());
    }
    if group.trim().is_empty() {
        return bad("message group cannot be whitespace only".into());
    }
    if group.len() >= MAX_MESSAGE_GROUP_SIZE {
        return bad(format!("message group must be shorter than {MAX_MESSAGE_GROUP_SIZE} bytes"));
    }
    if has_control(group) {
        return bad("message group cannot contain control characters".into());
    }
    Ok(())
}

/// User properties, with the tag and keys counted toward the size limit.
pub fn user_properties<S: std::hash::BuildHasher>(
    props: &HashMap<String, String, S>,
    tag: &str,
    keys: &[String],
) -> Result<()> {
    let too_large = |m: String| Err(Invalid::new(Code::MessagePropertiesTooLarge, m));
    if props.len() > MAX_USER_PROPERTIES {
        return too_large(format!(
            "{} user properties, at most {MAX_USER_PROPERTIES}",
            props.len()
        ));
    }
    let mut size = tag.len() + keys.iter().map(String::len).sum::<usize>();
    for (k, v) in props {
        // Apache's Message.putUserProperty refuses a blank name; an empty key would also
        // collide with the separators of RocketMQ's properties string.
        if k.trim().is_empty() {
            return Err(Invalid::new(
                Code::IllegalMessagePropertyKey,
                format!("property key {k:?} is empty or whitespace only"),
            ));
        }
        if RESERVED_PROPERTIES.contains(&k.as_str()) {
            return Err(Invalid::new(
                Code::IllegalMessagePropertyKey,
                format!("property {k:?} is used by the system"),
            ));
        }
        if has_control(k) {
            return Err(Invalid::new(
                Code::IllegalMessagePropertyKey,
                format!("the key of property {k:?} cannot contain control characters"),
            ));
        }
        if has_control(v) {
            return Err(Invalid::new(
                Code::IllegalMessagePropertyKey,
                format!("the value of property {k:?} cannot contain control characters"),
            ));
        }
        size += k.len() + v.len();
    }
    if size > MAX_USER_PROPERTY_SIZE {
        return too_large(format!(
            "user properties take {size} bytes, at most {MAX_USER_PROPERTY_SIZE}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(topic("orders-1_%|x").is_ok());
        assert_eq!(topic("").unwrap_err().code, Code::IllegalTopic);
        assert_eq!(topic("a b").unwrap_err().code, Code::IllegalTopic);
        assert_eq!(topic(&"t".repeat(128)).unwrap_err().code, Code::IllegalTopic);
        assert_eq!(topic("TBW102").unwrap_err().code, Code::IllegalTopic);
        assert!(group("g1").is_ok());
        assert_eq!(group("g/1").unwrap_err().code, Code::IllegalConsumerGroup);
        assert_eq!(group(&"g".repeat(121)).unwrap_err().code, Code::IllegalConsumerGroup);
    }

    #[test]
    fn message_fields() {
        assert!(tag("").is_ok() && tag("TagA").is_ok());
        assert_eq!(tag("a|b").unwrap_err().code, Code::IllegalMessageTag);
        assert_eq!(tag(" ").unwrap_err().code, Code::IllegalMessageTag);
        assert_eq!(tag("a\u{1}").unwrap_err().code, Code::IllegalMessageTag);
        assert_eq!(key("k\n").unwrap_err().code, Code::IllegalMessageKey);
        assert!(message_group(&"g".repeat(63)).is_ok());
        assert_eq!(message_group(&"g".repeat(64)).unwrap_err().code, Code::IllegalMessageGroup);
        let mut p = HashMap::new();
        p.insert("UNIQ_KEY".to_owned(), "x".to_owned());
        assert_eq!(user_properties(&p, "", &[]).unwrap_err().code, Code::IllegalMessagePropertyKey);
        let many: HashMap<String, String> =
            (0..129).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            user_properties(&many, "", &[]).unwrap_err().code,
            Code::MessagePropertiesTooLarge
        );
        let big: HashMap<String, String> = [("k".to_owned(), "v".repeat(16 * 1024))].into();
        assert_eq!(
            user_properties(&big, "", &[]).unwrap_err().code,
            Code::MessagePropertiesTooLarge
        );
    }
}
