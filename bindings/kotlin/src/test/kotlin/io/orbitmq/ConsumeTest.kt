package io.orbitmq

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import java.time.Duration
import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertNotNull
import kotlin.test.assertTrue

/** Produce, then consume with each consumer kind, against a real server. */
class ConsumeTest {
    private suspend fun topic(name: String, type: String = "NORMAL"): String {
        Admin(TestServer.config()).use { it.createTopic(TopicConfig(name = name, messageType = type)) }
        return name
    }

    private fun msg(topic: String, i: Int, group: String? = null) = Message(
        topic = topic, body = "body-$i".toByteArray(), tag = "t$i", keys = listOf("k$i"),
        properties = mapOf("i" to "$i"), messageGroup = group,
    )

    @Test
    fun simpleConsumerReceivesWhatTheProducerSent() = runBlocking {
        val t = topic(TestServer.unique("simple"))
        val consumer = SimpleConsumer(TestServer.config(), TestServer.unique("simple-g"),
            listOf(Subscription(t)), Duration.ofSeconds(1))
        consumer.start()
        val producer = Producer(TestServer.config(), listOf(t))
        producer.start()
        val receipts = producer.sendBatch((0 until 3).map { msg(t, it) })
        assertEquals(3, receipts.size)
        val one = producer.send(msg(t, 3))
        assertEquals(t, one.topic)
        assertTrue(one.messageId.isNotEmpty())

        val got = mutableMapOf<String, MessageView>()
        withTimeout(30_000) {
            while (got.size < 4) {
                for (m in consumer.receive(16u, Duration.ofSeconds(30))) {
                    consumer.ack(m)
                    got[m.properties.getValue("i")] = m
                }
            }
        }
        val m = got.getValue("2")
        assertContentEquals("body-2".toByteArray(), m.body)
        assertEquals("t2", m.tag)
        assertEquals(listOf("k2"), m.keys)
        assertEquals(1u, m.deliveryAttempt)
        producer.shutdown(); consumer.shutdown()
        producer.close(); consumer.close()
    }

    @Test
    fun pushConsumerHandsEachMessageToTheListener() = runBlocking {
        val t = topic(TestServer.unique("push"))
        val seen = Channel<MessageView>(Channel.UNLIMITED)
        val listener = object : MessageListener {
            override suspend fun consume(message: MessageView): ConsumeResult {
                seen.send(message)
                return ConsumeResult.SUCCESS
            }
        }
        val consumer = PushConsumer(TestServer.config(), TestServer.unique("push-g"), listOf(Subscription(t)), listener)
        consumer.start()
        Producer(TestServer.config(), listOf(t)).use { p ->
            for (i in 0 until 5) p.send(msg(t, i))
            p.shutdown()
        }
        val ids = mutableSetOf<String>()
        withTimeout(30_000) { while (ids.size < 5) ids += seen.receive().properties.getValue("i") }
        assertEquals(setOf("0", "1", "2", "3", "4"), ids)
        consumer.shutdown()
        consumer.close()
    }

    @Test
    fun aListenerExceptionIsAFailureAndTheMessageComesBack() = runBlocking {
        val t = topic(TestServer.unique("redeliver"))
        val attempts = Channel<UInt>(Channel.UNLIMITED)
        val calls = AtomicInteger()
        val listener = object : MessageListener {
            override suspend fun consume(message: MessageView): ConsumeResult {
                calls.incrementAndGet()
                attempts.send(message.deliveryAttempt)
                if (message.deliveryAttempt == 1u) throw IllegalStateException("the listener fails once")
                return ConsumeResult.SUCCESS
            }
        }
        val consumer = PushConsumer(TestServer.config(), TestServer.unique("redeliver-g"), listOf(Subscription(t)), listener)
        consumer.start()
        Producer(TestServer.config(), listOf(t)).use { p -> p.send(msg(t, 0)); p.shutdown() }
        withTimeout(60_000) {
            assertEquals(1u, attempts.receive())
            assertEquals(2u, attempts.receive(), "the failed message is delivered again")
        }
        consumer.shutdown()
        consumer.close()
    }

    @Test
    fun pullConsumerPollsCommitsAndSeeks() = runBlocking {
        val t = topic(TestServer.unique("pull"))
        Producer(TestServer.config(), listOf(t)).use { p ->
            for (i in 0 until 4) p.send(msg(t, i))
            p.shutdown()
        }
        val consumer = PullConsumer(TestServer.config(), TestServer.unique("pull-g"))
        val queues = consumer.queues(t)
        assertEquals(8, queues.size)
        consumer.assign(queues)
        consumer.start()
        consumer.seekToBeginning(t)
        val got = mutableSetOf<String>()
        withTimeout(30_000) {
            while (got.size < 4) consumer.poll(Duration.ofSeconds(1)).forEach { got += it.properties.getValue("i") }
        }
        assertEquals(setOf("0", "1", "2", "3"), got)
        consumer.commit()
        // Back to the start: the same messages again.
        consumer.seekToBeginning(t)
        val again = mutableSetOf<String>()
        withTimeout(30_000) {
            while (again.size < 4) consumer.poll(Duration.ofSeconds(1)).forEach { again += it.properties.getValue("i") }
        }
        consumer.shutdown()
        consumer.close()
    }

    @Test
    fun fifoDelayAndTransactionalSends() = runBlocking {
        val fifo = topic(TestServer.unique("fifo"), "FIFO")
        val delay = topic(TestServer.unique("delay"), "DELAY")
        val tx = topic(TestServer.unique("tx"), "TRANSACTION")
        val checker = object : TransactionChecker {
            override suspend fun check(message: MessageView) = TransactionResolution.ROLLBACK
        }
        val producer = Producer(TestServer.config(), listOf(fifo, delay, tx), checker)
        producer.start()
        val f = producer.send(msg(fifo, 0, group = "g1"))
        assertEquals(fifo, f.topic)

        val d = producer.send(Message(topic = delay, body = byteArrayOf(1), delay = Duration.ofMinutes(10)))
        val handle = assertNotNull(d.recallHandle, "a delay message has a recall handle")
        assertEquals(d.messageId, producer.recall(delay, handle))

        val consumer = SimpleConsumer(TestServer.config(), TestServer.unique("tx-g"), listOf(Subscription(tx)), Duration.ofSeconds(1))
        consumer.start()
        val committed = producer.beginTransaction()
        committed.send(msg(tx, 1))
        committed.commit()
        val rolledBack = producer.beginTransaction()
        rolledBack.send(msg(tx, 2))
        rolledBack.rollback()
        val e = kotlin.runCatching { rolledBack.commit() }.exceptionOrNull()
        assertTrue(e is OrbitMqException.PreconditionFailed, "a transaction ends once: $e")

        withTimeout(30_000) {
            var got: List<MessageView> = emptyList()
            while (got.isEmpty()) got = consumer.receive(16u, Duration.ofSeconds(30))
            assertEquals(listOf("1"), got.map { it.properties.getValue("i") }, "only the committed message")
            consumer.ack(got[0])
        }
        committed.close(); rolledBack.close()
        producer.shutdown(); consumer.shutdown()
        producer.close(); consumer.close()
    }
}
