// swift-tools-version:5.9
// OrbitMQ for Swift: the generated bindings (Sources/OrbitMQ, from bindings/generate.sh) over the
// Rust library packed as OrbitMQFFI.xcframework (build it with build-xcframework.sh on macOS;
// see README.md).
import PackageDescription

let package = Package(
    name: "OrbitMQ",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "OrbitMQ", targets: ["OrbitMQ"]),
    ],
    targets: [
        // The static library and the C header + module map of Sources/OrbitMQFFI/include.
        .binaryTarget(name: "OrbitMQFFI", path: "OrbitMQFFI.xcframework"),
        .target(name: "OrbitMQ", dependencies: ["OrbitMQFFI"], path: "Sources/OrbitMQ"),
        .testTarget(name: "OrbitMQTests", dependencies: ["OrbitMQ"], path: "Tests/OrbitMQTests"),
    ]
)
