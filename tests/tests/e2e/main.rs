//! End-to-end: the real broker on a 127.0.0.1 port, driven over gRPC as the official
//! RocketMQ 5 clients drive it.
#![allow(clippy::unwrap_used, clippy::too_many_lines, clippy::many_single_char_names)]

mod consume;
mod credentials;
mod dead_letter;
mod delay;
mod fifo;
mod limits;
mod namespace;
mod pull;
mod route;
mod tls;
mod transaction;
mod validation;
