package io.orbitmq

import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import java.time.Duration
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The admin client: topics, routes, message queries (by offset with a broker), groups, members,
 * resend, broker stats, progress and offset resets.
 */
class AdminTest {
    @Test
    fun topicsMessagesAndGroups() = runBlocking {
        val topic = TestServer.unique("admin")
        val group = TestServer.unique("admin-g")
        Admin(TestServer.config()).use { admin ->
            val created = admin.createTopic(TopicConfig(name = topic, readQueues = 4u, writeQueues = 4u))
            assertEquals(4u, created.writeQueues)
            assertTrue(admin.listTopics().any { it.name == topic })
            assertEquals(4, admin.topicRoute(topic).queues.size)

            val r = Producer(TestServer.config(), listOf(topic)).use { p ->
                p.send(Message(topic = topic, body = "stored".toByteArray(), keys = listOf("order-7"))).also { p.shutdown() }
            }
            val byOffset = admin.queryMessageByOffset(topic, r.queueId!!.toUInt(), r.queueOffset.toULong())
            assertContentEquals("stored".toByteArray(), byOffset.body)
            assertEquals("broker-a", byOffset.brokerName)
            val mine = admin.queryMessageByOffset(topic, r.queueId!!.toUInt(), r.queueOffset.toULong(), "broker-a")
            assertEquals(r.messageId, mine.messageId)
            val other = kotlin.runCatching {
                admin.queryMessageByOffset(topic, r.queueId!!.toUInt(), r.queueOffset.toULong(), "broker-b")
            }.exceptionOrNull()
            assertTrue(other is OrbitMqException.NotFound, "another broker's queue: $other")
            assertEquals(listOf(r.messageId), admin.queryMessageById(r.messageId).map { it.messageId })
            assertEquals(listOf(r.messageId), admin.queryMessageByKey(topic, "order-7").map { it.messageId })
            assertEquals(1uL, admin.topicStatus(topic).queues.sumOf { it.maxOffset - it.minOffset })

            assertTrue(admin.createGroup(group, GroupOptions(maxDeliveryAttempts = 3u)).created)
            assertTrue(admin.listGroups().any { it.name == group && it.maxDeliveryAttempts == 3u })

            // The consumer is the group's member; the message resent to the group comes again.
            SimpleConsumer(TestServer.config(), group, listOf(Subscription(topic)), Duration.ofSeconds(1)).use { c ->
                c.start()
                val first = withTimeout(30_000) {
                    var got = c.receive(1u, Duration.ofSeconds(30))
                    while (got.isEmpty()) got = c.receive(1u, Duration.ofSeconds(30))
                    got.single()
                }
                assertEquals(r.messageId, first.messageId)
                c.ack(first)
                val members = admin.groupMembers(group)
                assertEquals(listOf("SIMPLE_CONSUMER"), members.map { it.clientType }, "$members")
                assertEquals(listOf(topic), members.single().topics)
                admin.resendMessage(group, topic, r.messageId)
                val again = withTimeout(30_000) {
                    var got = c.receive(1u, Duration.ofSeconds(30))
                    while (got.isEmpty()) got = c.receive(1u, Duration.ofSeconds(30))
                    got.single()
                }
                assertEquals(r.messageId, again.messageId)
                c.ack(again)
                c.shutdown()
            }
            val unknown = kotlin.runCatching { admin.resendMessage(group, topic, "0123456789ABCDEF") }.exceptionOrNull()
            assertTrue(unknown is OrbitMqException.NotFound, "unknown message: $unknown")
            val stats = admin.brokerStats().single()
            assertEquals("broker-a", stats.brokerName)
            assertTrue(stats.messagesIn >= 1uL && stats.messagesOut >= 2uL && stats.diskBytes > 0uL, "$stats")
            admin.resetOffset(group, topic, 0)
            assertEquals(group, admin.consumerProgress(group).group)
            admin.deleteGroup(group)
            admin.deleteTopic(topic)
            val gone = kotlin.runCatching { admin.topic(topic) }.exceptionOrNull()
            assertTrue(gone is OrbitMqException.NotFound, "deleted: $gone")
        }
    }
}
