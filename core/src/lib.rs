//! OrbitMQ core: the storage engine, routing, broker and client logic behind the `orbitmq` server
//! and every language SDK.
//!
//! Features: `broker` compiles the storage engine (and, later, the broker); `client` the client SDK.
//! Bindings depend on `client` only, so wheels and `.node` files never compile storage.

#[cfg(feature = "broker")]
pub mod storage;

#[cfg(feature = "broker")]
pub mod broker;
pub mod protocol;
pub mod tls;
