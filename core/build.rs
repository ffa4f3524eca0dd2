//! Generates the protocol code from `proto/` with a pure-Rust protobuf compiler (protox) and
//! tonic-prost-build: no `protoc` needed on any machine.

/// Admin messages that derive `serde::Serialize`.
const SERIALIZED: &[&str] = &[
    "TopicConfig",
    "GroupConfig",
    "QueueRoute",
    "TopicRouteResponse",
    "QueueStatus",
    "TopicStatusResponse",
    "QueueProgress",
    "ConsumerProgressResponse",
    "QueueOffsetReset",
    "BrokerView",
    "ClusterListResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/apache/rocketmq/v2/service.proto",
        "proto/orbitmq/v1/admin.proto",
        "proto/orbitmq/v1/cluster.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    let mut builder = tonic_prost_build::configure();
    // The admin CLI prints these as JSON as they are (field names are the JSON keys).
    for ty in SERIALIZED {
        builder =
            builder.type_attribute(format!(".orbitmq.v1.{ty}"), "#[derive(serde::Serialize)]");
    }
    builder
        .build_client(true)
        .build_server(true)
        // Message bodies as `bytes::Bytes`: zero-copy from the store into responses.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
