//! OrbitMQ for Kotlin and Swift: thin `UniFFI` wrappers around the Rust client SDK
//! (`orbitmq_core::client`). Each method converts its arguments, calls the SDK on this crate's
//! runtime and converts the answer back; any logic beyond that belongs in the SDK
//! (`../shared/STYLE.md` §3).
//!
//! `bindings/generate.sh` generates the Kotlin package `io.orbitmq` and the Swift module
//! `OrbitMQ` from the built library.

mod admin;
mod config;
mod consumer;
mod error;
mod message;
mod producer;
mod runtime;

uniffi::setup_scaffolding!("orbitmq");
