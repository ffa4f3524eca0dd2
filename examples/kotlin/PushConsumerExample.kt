// Consumes with a push consumer whose listener is a Kotlin suspend function: returning
// SUCCESS acknowledges a message; FAILURE (or throwing) has it delivered again.
// Run: see examples/kotlin/README.md (bindings/kotlin's tests build and run it too).
package io.orbitmq.examples.pushconsumer

import io.orbitmq.ClientConfig
import io.orbitmq.ConsumeResult
import io.orbitmq.FilterExpression
import io.orbitmq.MessageListener
import io.orbitmq.MessageView
import io.orbitmq.PushConsumer
import io.orbitmq.Subscription
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/** Consumes `count` messages of `topic` tagged `greeting` as `group`; returns their bodies. */
suspend fun consume(endpoints: String, topic: String, group: String, count: Int): List<String> {
    val bodies = Channel<String>(Channel.UNLIMITED)
    val listener = object : MessageListener {
        override suspend fun consume(message: MessageView): ConsumeResult {
            bodies.send(message.body.decodeToString())
            return ConsumeResult.SUCCESS
        }
    }
    val subscription = Subscription(topic, FilterExpression.Tag("greeting"))
    return PushConsumer(ClientConfig(endpoints = endpoints), group, listOf(subscription), listener).use { consumer ->
        consumer.start()
        val got = withTimeout(60_000) { List(count) { bodies.receive() } }
        consumer.shutdown()
        got
    }
}

fun main(args: Array<String>) = runBlocking {
    val endpoints = args.getOrElse(0) { "127.0.0.1:8081" }
    val topic = args.getOrElse(1) { "example-topic" }
    for (body in consume(endpoints, topic, "example-group", 100)) println(body)
}
