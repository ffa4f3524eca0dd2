// Runs against a server at ORBITMQ_ENDPOINT (start `orbitmq standalone` first; see README.md).
// This machine has no Swift toolchain: the file is kept for machines that have one.
import Foundation
import OrbitMQ
import XCTest

final class OrbitMQTests: XCTestCase {
    private var endpoint: String {
        ProcessInfo.processInfo.environment["ORBITMQ_ENDPOINT"] ?? "127.0.0.1:8081"
    }

    private func config() -> ClientConfig {
        ClientConfig(endpoints: endpoint, requestTimeout: 5)
    }

    private func unique(_ prefix: String) -> String {
        "swift-\(prefix)-\(UInt64(Date().timeIntervalSince1970 * 1000))"
    }

    func testProduceAndReceive() async throws {
        let topic = unique("simple")
        let admin = try Admin(config: config())
        _ = try await admin.createTopic(topic: TopicConfig(name: topic))
        let consumer = try SimpleConsumer(config: config(), group: unique("simple-g"),
                                          subscriptions: [Subscription(topic: topic)], awaitDuration: 1)
        try await consumer.start()
        let producer = try Producer(config: config(), topics: [topic])
        try await producer.start()
        let receipt = try await producer.send(message: Message(topic: topic, body: Data("hello".utf8), tag: "greeting"))
        XCTAssertEqual(receipt.topic, topic)

        var got: [MessageView] = []
        let deadline = Date().addingTimeInterval(30)
        while got.isEmpty && Date() < deadline {
            got = try await consumer.receive(max: 16, invisibleDuration: 30)
        }
        XCTAssertEqual(got.first.map { String(decoding: $0.body, as: UTF8.self) }, "hello")
        XCTAssertEqual(got.first?.tag, "greeting")
        for m in got { try await consumer.ack(message: m) }
        await producer.shutdown()
        await consumer.shutdown()
    }

    func testErrorsHaveTheirKind() async throws {
        XCTAssertThrowsError(try Producer(config: ClientConfig(endpoints: "no-port"))) { error in
            guard case OrbitMqError.BadRequest(let code, _, _, _, _) = error else {
                return XCTFail("expected BadRequest, got \(error)")
            }
            XCTAssertEqual(code, 1)
        }
        let admin = try Admin(config: config())
        do {
            _ = try await admin.topic(topic: unique("missing"))
            XCTFail("a missing topic")
        } catch OrbitMqError.NotFound(let code, _, _, _, _) {
            XCTAssertEqual(code, 4)
        }
    }

    func testObjectsFreedByARCReleaseTheirNativeHandles() throws {
        let before = liveHandles()
        for i in 0..<1000 {
            _ = try SimpleConsumer(config: config(), group: "swift-gc-\(i)", subscriptions: [])
        }
        XCTAssertEqual(liveHandles(), before)
    }
}
