// The Kotlin producer's load for tests/perf/sdk_vs_java.sh, shaped like tests/perf/apache-load:
// WARMUP unmeasured sends, then COUNT 1 KiB messages, one per send, INFLIGHT coroutines each
// awaiting one send at a time; prints one JSON line with the rate and the server's CPU ticks
// (utime + stime of --pids) over the measured sends.
// Run: java -Djna.library.path=DIR -cp ... io.orbitmq.perf.KotlinLoadKt --endpoint H:P --topic T
//        [--count N] [--warmup N] [--inflight N] [--pids PID,...]
package io.orbitmq.perf

import io.orbitmq.ClientConfig
import io.orbitmq.Message
import io.orbitmq.Producer
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.atomic.AtomicLong

private fun serverTicks(pids: List<Long>): Long = pids.sumOf { pid ->
    val stat = Files.readString(Path.of("/proc/$pid/stat"))
    val f = stat.substring(stat.lastIndexOf(')') + 2).split(" ")
    f[11].toLong() + f[12].toLong()
}

/** Sends `count` messages with `inflight` coroutines; returns the errors. */
private suspend fun sendAll(producer: Producer, topic: String, body: ByteArray, count: Long, inflight: Int): Long {
    val next = AtomicLong()
    val errors = AtomicLong()
    kotlinx.coroutines.coroutineScope {
        repeat(inflight) {
            launch(Dispatchers.Default) {
                while (next.getAndIncrement() < count) {
                    try {
                        producer.send(Message(topic = topic, body = body))
                    } catch (e: Exception) {
                        if (errors.incrementAndGet() <= 3) System.err.println("[kotlin-load] send failed: $e")
                    }
                }
            }
        }
    }
    return errors.get()
}

fun main(args: Array<String>) = runBlocking {
    val opts = args.toList().chunked(2).associate { it[0].removePrefix("--") to it.getOrElse(1) { "" } }
    val endpoint = opts.getValue("endpoint")
    val topic = opts.getValue("topic")
    val count = opts["count"]?.toLong() ?: 100_000
    val warmup = opts["warmup"]?.toLong() ?: 20_000
    val inflight = opts["inflight"]?.toInt() ?: 512
    val pids = opts["pids"]?.split(",")?.filter { it.isNotEmpty() }?.map { it.toLong() } ?: emptyList()
    val body = ByteArray(1024) { (it % 251).toByte() }
    Producer(ClientConfig(endpoints = endpoint), listOf(topic)).use { producer ->
        producer.start()
        sendAll(producer, topic, body, warmup, inflight)
        val ticks0 = serverTicks(pids)
        val t0 = System.nanoTime()
        val errors = sendAll(producer, topic, body, count, inflight)
        val t1 = System.nanoTime()
        val ticks1 = serverTicks(pids)
        val secs = (t1 - t0) / 1e9
        println(
            "{\"phase\":\"produce\",\"client\":\"orbitmq-kotlin\",\"msgs\":$count,\"secs\":%.3f,\"msgs_per_sec\":%.0f,\"server_ticks\":%d,\"errors\":%d,\"size\":1024,\"inflight\":%d}"
                .format(secs, count / secs, ticks1 - ticks0, errors, inflight),
        )
        producer.shutdown()
    }
}
