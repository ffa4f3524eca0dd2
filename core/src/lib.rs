//! OrbitMQ core: the storage engine, routing, broker and client logic behind the `orbitmq` server
//! and every language SDK.
//!
//! Features: `broker` compiles the storage engine (and, later, the broker); `client` the client SDK.
//! Bindings depend on `client` only, so wheels and `.node` files never compile storage.
//! `tls` (the TLS client connector) is always there; its server side (`tls::server`:
//! certificates, the self-signed one) comes with `broker`.

#[cfg(feature = "broker")]
pub mod storage;

#[cfg(feature = "broker")]
pub mod broker;
pub mod protocol;
pub mod tls;
