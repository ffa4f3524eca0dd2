//! Runnable examples live under `examples/<language>/`; run the Rust ones with
//! `cargo run -p orbitmq-examples --example <name>`. This crate holds what they share.

/// The server to talk to: `$ORBITMQ_ENDPOINT`, else `127.0.0.1:8081` (`orbitmq standalone`'s
/// default).
#[must_use]
pub fn endpoint() -> String {
    std::env::var("ORBITMQ_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:8081".to_owned())
}

/// A short id unique to this run, to tell its messages from those of earlier runs on the same
/// topic.
#[must_use]
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}
