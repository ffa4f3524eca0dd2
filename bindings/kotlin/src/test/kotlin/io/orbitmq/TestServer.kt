package io.orbitmq

import java.net.ServerSocket
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.util.concurrent.TimeUnit

/**
 * One `orbitmq standalone` for the whole test run, as tests/compat/java's CompatEnv starts it:
 * `$ORBITMQ_BIN` (env or system property) on a free loopback port with a temporary data dir,
 * ready once it prints `ready on HOST:PORT`, SIGTERMed when the JVM exits.
 */
object TestServer {
    private val runId = System.currentTimeMillis().toString(36)

    val endpoint: String by lazy { start() }

    fun config(): ClientConfig = ClientConfig(endpoints = endpoint, requestTimeout = java.time.Duration.ofSeconds(5))

    /** A topic or group name unique to this run. */
    fun unique(prefix: String): String = "kt-$prefix-$runId"

    private fun start(): String {
        val bin = System.getenv("ORBITMQ_BIN")?.takeIf { it.isNotEmpty() }
            ?: System.getProperty("ORBITMQ_BIN")?.takeIf { it.isNotEmpty() }
            ?: error("set ORBITMQ_BIN to the orbitmq server binary (bindings/test.sh does)")
        check(Files.isExecutable(Paths.get(bin))) { "ORBITMQ_BIN=$bin is not an executable" }
        val dir: Path = Files.createTempDirectory("orbitmq-kotlin-")
        val log = dir.resolve("server.log")
        val port = ServerSocket(0).use { it.localPort }
        val proc = ProcessBuilder(
            bin, "standalone", "--listen", "127.0.0.1:$port", "--metrics-listen", "off",
            "--dashboard-listen", "off",
            "--data-dir", dir.resolve("data").toString(),
        ).redirectErrorStream(true).redirectOutput(log.toFile()).start()
        Runtime.getRuntime().addShutdownHook(Thread {
            proc.destroy()
            if (!proc.waitFor(10, TimeUnit.SECONDS)) proc.destroyForcibly()
        })
        val ready = Regex("ready on (\\S+)")
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        while (System.nanoTime() < deadline) {
            ready.find(Files.readString(log, StandardCharsets.UTF_8))?.let { return it.groupValues[1] }
            if (!proc.isAlive) break
            Thread.sleep(50)
        }
        proc.destroyForcibly()
        error("the server did not print 'ready on ...' within 30 s:\n" + Files.readString(log))
    }
}
