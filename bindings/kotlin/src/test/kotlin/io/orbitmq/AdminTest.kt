package io.orbitmq

import kotlinx.coroutines.runBlocking
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/** The admin client: topics, routes, message queries, groups, progress and offset resets. */
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
            assertEquals(listOf(r.messageId), admin.queryMessageById(r.messageId).map { it.messageId })
            assertEquals(listOf(r.messageId), admin.queryMessageByKey(topic, "order-7").map { it.messageId })
            assertEquals(1uL, admin.topicStatus(topic).queues.sumOf { it.maxOffset - it.minOffset })

            assertTrue(admin.createGroup(group, GroupOptions(maxDeliveryAttempts = 3u)).created)
            assertTrue(admin.listGroups().any { it.name == group && it.maxDeliveryAttempts == 3u })
            admin.resetOffset(group, topic, 0)
            assertEquals(group, admin.consumerProgress(group).group)
            admin.deleteGroup(group)
            admin.deleteTopic(topic)
            val gone = kotlin.runCatching { admin.topic(topic) }.exceptionOrNull()
            assertTrue(gone is OrbitMqException.NotFound, "deleted: $gone")
        }
    }
}
