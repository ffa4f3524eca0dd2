// Sends messages from Kotlin coroutines: 64 sends in flight at once.
// Run: see examples/kotlin/README.md (bindings/kotlin's tests build and run it too).
package io.orbitmq.examples.producer

import io.orbitmq.ClientConfig
import io.orbitmq.Message
import io.orbitmq.Producer
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.sync.withPermit

/** Sends `count` messages to `topic`; returns their message ids. */
suspend fun produce(endpoints: String, topic: String, count: Int): List<String> =
    Producer(ClientConfig(endpoints = endpoints), listOf(topic)).use { producer ->
        producer.start()
        val inFlight = Semaphore(64)
        val ids = coroutineScope {
            (0 until count).map { i ->
                async {
                    inFlight.withPermit {
                        val message = Message(topic = topic, body = "hello $i".toByteArray(), tag = "greeting", keys = listOf("order-$i"))
                        producer.send(message).messageId
                    }
                }
            }.awaitAll()
        }
        producer.shutdown()
        ids
    }

fun main(args: Array<String>) = runBlocking {
    val endpoints = args.getOrElse(0) { "127.0.0.1:8081" }
    val topic = args.getOrElse(1) { "example-topic" }
    val ids = produce(endpoints, topic, 100)
    println("sent ${ids.size} messages, the last one ${ids.last()}")
}
