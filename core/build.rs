//! Generates the protocol code from `proto/` with a pure-Rust protobuf compiler (protox) and
//! tonic-prost-build: no `protoc` needed on any machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/apache/rocketmq/v2/service.proto", "proto/orbitmq/v1/admin.proto"];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Message bodies as `bytes::Bytes`: zero-copy from the store into responses.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
