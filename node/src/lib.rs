//! OrbitMQ for Node.js: the client SDK of `orbitmq-core` (`core::client`) as a native addon.
//!
//! Thin by design (`STYLE.md` §3): each method converts its arguments, calls the core and
//! converts the answer. Behaviour lives in the core, shared with the Rust, Python and
//! Kotlin/Swift clients.

mod admin;
mod consumer;
mod error;
mod message;
mod producer;
mod runtime;
