//! OrbitMQ core: the storage engine, routing, broker and client logic behind the `orbitmq` server
//! and every language SDK.
//!
//! Features:
//! - `client` (default): the client SDK. The bindings depend on `orbitmq-core` with
//!   `default-features = false, features = ["client"]`, so wheels, `.node` files and the Kotlin and Swift
//!   library never compile storage, the HTTP/2 server or signal handling (`tests/features.sh`
//!   checks the client-only dependency tree).
//! - `broker`: the storage engine, the broker and its gRPC server (tonic's `server` and
//!   `router`); the `orbitmq` binary enables it.
//!
//! Always there, shared by both halves: [`protocol`] (the generated wire code and its time
//! conversions) and [`tls`] (the TLS client connector; its server side, `tls::server`, comes
//! with `broker`).

#[cfg(feature = "broker")]
pub mod storage;

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "broker")]
pub mod namesrv;
#[cfg(feature = "broker")]
pub mod peer;
pub mod protocol;
pub mod tls;
