//! OrbitMQ for Node.js: the client SDK of `orbitmq-core` (`core::client`) as a native addon.
//!
//! Thin by design (`STYLE.md` §3): each method converts its arguments, calls the core and
//! converts the answer. Behaviour lives in the core, shared with the Rust, Python and
//! Kotlin/Swift clients.

// napi hands every argument over by value.
#![allow(clippy::needless_pass_by_value)]

pub mod admin;
pub mod consumer;
pub mod error;
pub mod message;
pub mod producer;
pub mod runtime;
