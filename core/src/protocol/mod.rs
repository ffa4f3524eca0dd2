//! Generated protocol code: `apache.rocketmq.v2` (the client protocol the official RocketMQ 5
//! clients speak) and `orbitmq.v1` (our admin API). Built from `core/proto` by `build.rs`.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::clone_on_ref_ptr,
    unused_qualifications,
    rust_2018_idioms
)]

/// `apache.rocketmq.v2`.
pub mod v2 {
    tonic::include_proto!("apache.rocketmq.v2");
}

/// `orbitmq.v1`.
pub mod admin {
    tonic::include_proto!("orbitmq.v1");
}
