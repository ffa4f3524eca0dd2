package io.orbitmq

import kotlinx.coroutines.runBlocking
import kotlin.concurrent.thread
import java.time.Duration
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** Errors as typed exceptions, close(), and objects the garbage collector drops. */
class LifecycleTest {
    @Test
    fun errorsSurfaceAsOrbitMqExceptionsOfTheRightKind() = runBlocking {
        val bad = assertFailsWith<OrbitMqException.BadRequest> { Producer(ClientConfig(endpoints = "no-port")) }
        assertEquals(1u.toUShort(), bad.code)
        assertTrue(bad.detail.contains("no-port"), bad.detail)

        val admin = Admin(TestServer.config())
        val missing = assertFailsWith<OrbitMqException.NotFound> { admin.topic(TestServer.unique("missing")) }
        assertEquals(4u.toUShort(), missing.code)
        assertTrue(missing is OrbitMqException, "one base type for every kind")

        val p = Producer(TestServer.config())
        p.shutdown()
        val closed = assertFailsWith<OrbitMqException.Closed> { p.send(Message(topic = "any", body = byteArrayOf(1))) }
        assertEquals(11u.toUShort(), closed.code)
        p.close(); admin.close()
    }

    @Test
    fun closeReleasesTheNativeObject() = runBlocking {
        val before = liveHandles()
        val admin = Admin(TestServer.config())
        val consumer = SimpleConsumer(TestServer.config(), TestServer.unique("close-g"), listOf(), Duration.ofSeconds(1))
        assertEquals(before + 2u, liveHandles())
        admin.listTopics()
        admin.close()
        consumer.close()
        assertEquals(before, liveHandles(), "close() dropped both native objects")
        assertFailsWith<IllegalStateException> { admin.listTopics() }
        Unit
    }

    @Test
    fun aThousandObjectsDroppedWithoutCloseDoNotCrashTheJvm() {
        val before = liveHandles()
        // On a thread of their own that then ends: a coroutine event loop (thread-local) may
        // keep the last continuation, and the frame holding the objects, reachable.
        var failure: Throwable? = null
        thread { failure = runCatching { runBlocking { createAndDrop(before) } }.exceptionOrNull() }.join()
        failure?.let { throw it }
        val deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos()
        while (liveHandles() > before && System.nanoTime() < deadline) {
            System.gc()
            Thread.sleep(50)
        }
        assertEquals(before, liveHandles(), "the garbage collector released every native object")
        // Still working afterwards.
        runBlocking { Admin(TestServer.config()).use { it.listTopics() } }
    }

    /** Made in their own frame: a suspended caller's frame may still hold the last one. */
    private suspend fun createAndDrop(before: ULong) {
        val objects = ArrayList<AutoCloseable>()
        for (i in 0 until 1000) {
            objects += when (i % 4) {
                0 -> Producer(TestServer.config(), listOf())
                1 -> SimpleConsumer(TestServer.config(), "kt-gc-$i", listOf())
                2 -> Admin(TestServer.config())
                else -> PullConsumer(TestServer.config(), "kt-gc-$i")
            }
        }
        // Some with connections and background tasks: started, never shut down, never closed.
        for (i in 0 until 10) {
            val p = Producer(TestServer.config())
            p.start()
            objects += p
            val a = Admin(TestServer.config())
            a.listTopics()
            objects += a
        }
        assertEquals(before + 1020u, liveHandles())
    }
}
