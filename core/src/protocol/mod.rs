//! The wire protocols, shared by the broker and the client SDK: the generated code for
//! `apache.rocketmq.v2` (the client protocol the official RocketMQ 5 clients speak) and
//! `orbitmq.v1` (our admin API), built from `core/proto` by `build.rs`, and the conversions
//! between protobuf's time types and ours ([`time`]), and RocketMQ's rules for names and message
//! fields ([`validate`]), and the stored names of a namespace ([`namespace`]), and request
//! signing with credentials, client and server side (`auth`).

#[cfg(any(feature = "client", feature = "broker"))]
pub mod auth;
pub mod namespace;
pub mod time;
pub mod validate;

/// OrbitMQ's response header on `SendMessage` and `ReceiveMessage`: the `offset_msg_id` (store
/// host + CommitLog offset) of each entry or message, comma-separated, in order. The official
/// clients ignore it; the OrbitMQ SDK fills `offset_msg_id` from it (absent from Apache's
/// proxy: `None`).
pub const HEADER_OFFSET_MSG_IDS: &str = "x-orbitmq-offset-msg-ids";
/// OrbitMQ's response header on `SendMessage`: each entry's queue id, comma-separated, empty
/// for delay and transaction messages (stored in a system queue first).
pub const HEADER_QUEUE_IDS: &str = "x-orbitmq-queue-ids";

/// OrbitMQ's request header on `QueryRoute` from a name server to a broker: answer this
/// broker's own route (creating the topic if it creates topics on first use) instead of the
/// cluster's route from the name servers.
pub const HEADER_LOCAL_ROUTE: &str = "x-orbitmq-local-route";

/// `apache.rocketmq.v2`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::clone_on_ref_ptr,
    unused_qualifications,
    rust_2018_idioms
)]
pub mod v2 {
    tonic::include_proto!("apache.rocketmq.v2");
}

/// `orbitmq.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::clone_on_ref_ptr,
    unused_qualifications,
    rust_2018_idioms
)]
pub mod admin {
    tonic::include_proto!("orbitmq.v1");
}
