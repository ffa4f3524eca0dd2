// A producer and a push consumer from Swift concurrency. Build the OrbitMQ package first
// (bindings/swift/README.md), then make this the main.swift of an executable target that
// depends on it. Needs a server: `orbitmq standalone` and a topic `example-topic`.
import Foundation
import OrbitMQ

final class Printer: MessageListener, @unchecked Sendable {
    func consume(message: MessageView) async throws -> ConsumeResult {
        print("got \(String(decoding: message.body, as: UTF8.self)) (attempt \(message.deliveryAttempt))")
        return .success // .failure, or throwing: delivered again later
    }
}

let config = ClientConfig(endpoints: CommandLine.arguments.dropFirst().first ?? "127.0.0.1:8081")
let topic = "example-topic"

let consumer = try PushConsumer(config: config, group: "example-group",
                                subscriptions: [Subscription(topic: topic, filter: .tag(expression: "*"))],
                                listener: Printer())
try await consumer.start()

let producer = try Producer(config: config, topics: [topic])
try await producer.start()
try await withThrowingTaskGroup(of: SendReceipt.self) { group in
    for i in 0..<10 {
        group.addTask { try await producer.send(message: Message(topic: topic, body: Data("hello \(i)".utf8))) }
    }
    for try await receipt in group { print("sent \(receipt.messageId)") }
}
await producer.shutdown()

try await Task.sleep(nanoseconds: 5_000_000_000)
await consumer.shutdown()
