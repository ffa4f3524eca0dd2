package io.orbitmq

import io.orbitmq.examples.producer.produce
import io.orbitmq.examples.pushconsumer.consume
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlin.test.Test
import kotlin.test.assertEquals

/** examples/kotlin, built with the tests, run against the test server. */
class ExamplesTest {
    @Test
    fun theProducerAndPushConsumerExamplesWork() = runBlocking {
        val topic = TestServer.unique("example")
        Admin(TestServer.config()).use { it.createTopic(TopicConfig(name = topic)) }
        val consumed = async { consume(TestServer.endpoint, topic, TestServer.unique("example-g"), 100) }
        delay(500)
        assertEquals(100, produce(TestServer.endpoint, topic, 100).toSet().size)
        assertEquals((0 until 100).map { "hello $it" }.toSet(), consumed.await().toSet())
    }
}
