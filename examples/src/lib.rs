//! Runnable examples live under `examples/<language>/`; run the Rust ones with
//! `cargo run -p orbitmq-examples --example <name>`.
