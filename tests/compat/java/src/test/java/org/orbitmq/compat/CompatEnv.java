package org.orbitmq.compat;

import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.rocketmq.client.apis.ClientConfiguration;

/**
 * The server under test and its admin command, shared by all test classes of one JVM.
 *
 * <p>Contract (same as the Python and Node suites, see tests/compat/README.md): {@code ORBITMQ_ENDPOINT=host:port}
 * set: use that server. Otherwise start {@code $ORBITMQ_BIN standalone --listen 127.0.0.1:<free port> --data-dir <temp
 * dir>} ({@code ORBITMQ_BIN} defaults to {@code <repo>/target/debug/orbitmq}), wait up to 30 s for a stdout line
 * {@code ready on <addr>}, SIGTERM it when the JVM exits. {@code ORBITMQ_ADMIN} is the command prefix that creates
 * topics and groups, default {@code $ORBITMQ_BIN admin --endpoints <endpoint>}.
 */
public final class CompatEnv {
    public static final String RUN_ID = HexFormat.of().formatHex(SecureRandom.getSeed(4));
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration ADMIN_TIMEOUT = Duration.ofSeconds(90);
    private static final ExecutorService CALLS = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "compat-call");
        t.setDaemon(true);
        return t;
    });
    private static String endpoint;

    private CompatEnv() {
    }

    /** A topic/group name unique to this run. */
    public static String unique(String prefix) {
        return "java-" + prefix + "-" + RUN_ID;
    }

    private static Path repo() {
        // tests/compat/java is the working directory under Maven.
        return Paths.get("").toAbsolutePath().getParent().getParent().getParent();
    }

    private static String orbitmqBin() {
        String bin = System.getenv("ORBITMQ_BIN");
        return bin != null && !bin.isEmpty() ? bin : repo().resolve("target/debug/orbitmq").toString();
    }

    public static synchronized String endpoint() throws Exception {
        if (endpoint != null) {
            return endpoint;
        }
        String given = System.getenv("ORBITMQ_ENDPOINT");
        if (given != null && !given.isEmpty()) {
            return endpoint = given;
        }
        return endpoint = startServer();
    }

    /** The access key and secret key the second server requires (AuthTest). */
    public static final String AUTH_ACCESS_KEY = envOr("ORBITMQ_AUTH_ACCESS_KEY", "compat-ak");
    public static final String AUTH_SECRET_KEY = envOr("ORBITMQ_AUTH_SECRET_KEY", "compat-secret");
    private static String authEndpoint;

    private static String envOr(String name, String otherwise) {
        String v = System.getenv(name);
        return v != null && !v.isEmpty() ? v : otherwise;
    }

    /**
     * A server that requires {@link #AUTH_ACCESS_KEY} and {@link #AUTH_SECRET_KEY}: {@code ORBITMQ_AUTH_ENDPOINT} if
     * set, else one started here with {@code --access-key}/{@code --secret-key}; {@code null} when
     * {@code ORBITMQ_ENDPOINT} names another server and {@code ORBITMQ_AUTH_ENDPOINT} is unset.
     */
    public static synchronized String authEndpoint() throws Exception {
        if (authEndpoint != null) {
            return authEndpoint;
        }
        String given = System.getenv("ORBITMQ_AUTH_ENDPOINT");
        if (given != null && !given.isEmpty()) {
            return authEndpoint = given;
        }
        String other = System.getenv("ORBITMQ_ENDPOINT");
        if (other != null && !other.isEmpty()) {
            return null;
        }
        return authEndpoint = startServer("--access-key", AUTH_ACCESS_KEY, "--secret-key", AUTH_SECRET_KEY);
    }

    /** Starts {@code $ORBITMQ_BIN standalone} with {@code extra} flags on a free port; returns its address. */
    private static String startServer(String... extra) throws Exception {
        String bin = orbitmqBin();
        if (!Files.isExecutable(Paths.get(bin))) {
            throw new IllegalStateException("ORBITMQ_ENDPOINT is unset and the server binary " + bin
                + " does not exist (build it, or set ORBITMQ_BIN / ORBITMQ_ENDPOINT)");
        }
        Path dir = Files.createTempDirectory("orbitmq-compat-java-");
        Path log = dir.resolve("server.log");
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        // Metrics on a free port: the default 127.0.0.1:5557 may be taken by a running server.
        List<String> cmd = new ArrayList<>(List.of(bin, "standalone", "--listen", "127.0.0.1:" + port, "--data-dir",
            dir.resolve("data").toString(), "--metrics-listen", "127.0.0.1:0", "--dashboard-listen", "off"));
        cmd.addAll(List.of(extra));
        Process proc = new ProcessBuilder(cmd)
            .redirectErrorStream(true).redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE)
            .start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            proc.destroy(); // SIGTERM
            try {
                if (!proc.waitFor(10, TimeUnit.SECONDS)) {
                    proc.destroyForcibly();
                }
            } catch (InterruptedException ignored) {
                proc.destroyForcibly();
            }
        }));
        Pattern ready = Pattern.compile("ready on (\\S+)");
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            Matcher m = ready.matcher(Files.readString(log, StandardCharsets.UTF_8));
            if (m.find()) {
                return m.group(1);
            }
            if (!proc.isAlive()) {
                break;
            }
            Thread.sleep(100);
        }
        proc.destroyForcibly();
        String out = Files.readString(log, StandardCharsets.UTF_8);
        throw new IllegalStateException("server did not print 'ready on <addr>' within " + READY_TIMEOUT
            + "; log:\n" + out.substring(Math.max(0, out.length() - 4000)));
    }

    public static ClientConfiguration clientConfiguration() throws Exception {
        return ClientConfiguration.newBuilder()
            .setEndpoints(endpoint())
            .enableSsl(false)
            .setRequestTimeout(Duration.ofSeconds(5))
            .build();
    }

    // ---------------------------------------------------------------------------------------------- admin

    private static List<String> adminPrefix() throws Exception {
        String prefix = System.getenv("ORBITMQ_ADMIN");
        if (prefix != null && !prefix.isBlank()) {
            return shellSplit(prefix);
        }
        return List.of(orbitmqBin(), "admin", "--endpoints", endpoint());
    }

    private static void admin(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(adminPrefix());
        cmd.addAll(List.of(args));
        Path out = Files.createTempFile("orbitmq-admin-", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile())
                .redirectInput(ProcessBuilder.Redirect.PIPE).start();
            p.getOutputStream().close();
            if (!p.waitFor(ADMIN_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("admin command timed out after " + ADMIN_TIMEOUT + ": " + cmd);
            }
            if (p.exitValue() != 0) {
                throw new AssertionError("admin command failed (exit " + p.exitValue() + "): " + cmd + "\n"
                    + Files.readString(out, StandardCharsets.UTF_8));
            }
        } finally {
            Files.deleteIfExists(out);
        }
    }

    public static void createTopic(String topic) throws Exception {
        admin("topic", "create", "--topic", topic, "--read-queues", "4", "--write-queues", "4",
            "--message-type", "normal");
    }

    public static void createGroup(String group) throws Exception {
        admin("group", "create", "--group", group);
    }

    /** A topic of the given message type: normal, fifo, delay or transaction. */
    public static void createTopic(String topic, String messageType) throws Exception {
        admin("topic", "create", "--topic", topic, "--read-queues", "4", "--write-queues", "4",
            "--message-type", messageType);
    }

    /** A group; {@code fifo} makes it consume in order (each message group one message at a time). */
    public static void createGroup(String group, boolean fifo) throws Exception {
        if (fifo) {
            admin("group", "create", "--group", group, "--fifo");
        } else {
            createGroup(group);
        }
    }

    public static final String TOPIC_SEND = unique("send");
    public static final String TOPIC_SIMPLE = unique("simple");
    public static final String TOPIC_PUSH = unique("push");
    public static final String GROUP_SIMPLE = unique("simple");
    public static final String GROUP_PUSH = unique("push");
    private static final Object RESOURCES_LOCK = new Object();
    private static boolean created;

    /** Creates every topic and group the suite uses, once per JVM, before the first test needs them. */
    public static void ensureResources() throws Exception {
        endpoint(); // start the server first (the admin threads below need it, and endpoint() is synchronized)
        synchronized (RESOURCES_LOCK) {
            if (!created) {
                createAll(List.of(TOPIC_SEND, TOPIC_SIMPLE, TOPIC_PUSH), List.of(GROUP_SIMPLE, GROUP_PUSH));
                created = true;
            }
        }
    }

    // Message-type tests (FifoPushConsumerTest, TransactionProducerTest): created once, together, by whichever
    // of them runs first.
    public static final String TOPIC_FIFO = unique("fifo");
    public static final String GROUP_FIFO = unique("fifo");
    public static final String TOPIC_TX = unique("tx");
    public static final String GROUP_TX = unique("tx");
    private static boolean typedCreated;

    /** Creates the FIFO topic and group and the transaction topic and group, once per JVM. */
    public static void ensureMessageTypeResources() throws Exception {
        endpoint();
        synchronized (RESOURCES_LOCK) {
            if (!typedCreated) {
                concurrently(List.of(
                    () -> createTopic(TOPIC_FIFO, "fifo"),
                    () -> createGroup(GROUP_FIFO, true),
                    () -> createTopic(TOPIC_TX, "transaction"),
                    () -> createGroup(GROUP_TX, false)));
                typedCreated = true;
            }
        }
    }

    /** Runs admin calls concurrently and waits for all of them; the first failure is rethrown. */
    public static void concurrently(List<ThrowingRunnableVoid> calls) throws Exception {
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (ThrowingRunnableVoid c : calls) {
            all.add(CompletableFuture.runAsync(() -> unchecked(c::run), CALLS));
        }
        try {
            CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).get(2 * ADMIN_TIMEOUT.toSeconds(),
                TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException && cause.getCause() instanceof Exception) {
                cause = cause.getCause();
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw cause instanceof Exception ? (Exception) cause : e;
        }
    }

    /** Creates the topics and groups concurrently (each admin call may start a JVM against Apache). */
    public static void createAll(List<String> topics, List<String> groups) throws Exception {
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (String t : topics) {
            all.add(CompletableFuture.runAsync(() -> unchecked(() -> createTopic(t)), CALLS));
        }
        for (String g : groups) {
            all.add(CompletableFuture.runAsync(() -> unchecked(() -> createGroup(g)), CALLS));
        }
        try {
            CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).get(2 * ADMIN_TIMEOUT.toSeconds(),
                TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
        }
    }

    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    private static void unchecked(ThrowingRunnable r) {
        try {
            r.run();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    /** Minimal POSIX-shell-like word splitting (whitespace, '...', "...", backslash). */
    static List<String> shellSplit(String s) {
        List<String> words = new ArrayList<>();
        StringBuilder cur = null;
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                } else if (c == '\\' && quote == '"' && i + 1 < s.length()) {
                    cur.append(s.charAt(++i));
                } else {
                    cur.append(c);
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
                if (cur == null) {
                    cur = new StringBuilder();
                }
            } else if (c == '\\' && i + 1 < s.length()) {
                if (cur == null) {
                    cur = new StringBuilder();
                }
                cur.append(s.charAt(++i));
            } else if (Character.isWhitespace(c)) {
                if (cur != null) {
                    words.add(cur.toString());
                }
                cur = null;
            } else {
                if (cur == null) {
                    cur = new StringBuilder();
                }
                cur.append(c);
            }
        }
        if (quote != 0) {
            throw new IllegalArgumentException("unbalanced quote in ORBITMQ_ADMIN: " + s);
        }
        if (cur != null) {
            words.add(cur.toString());
        }
        return words;
    }

    // ---------------------------------------------------------------------------------------------- bounded calls

    /** Runs a blocking client call on another thread and fails instead of hanging forever. */
    public static <T> T within(Duration limit, String what, Callable<T> call) throws Exception {
        Future<T> f = CALLS.submit(call);
        try {
            return f.get(limit.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            throw new AssertionError(what + " did not finish within " + limit);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
        }
    }

    public static void withinRun(Duration limit, String what, ThrowingRunnableVoid call) throws Exception {
        within(limit, what, () -> {
            call.run();
            return null;
        });
    }

    public interface ThrowingRunnableVoid {
        void run() throws Exception;
    }

    /** Closes a client; a failure or a hang fails the test. */
    static void close(AutoCloseable c) throws Exception {
        withinRun(Duration.ofSeconds(60), "close " + c.getClass().getSimpleName(), c::close);
    }

    /** Closes a client after a failure, without masking the original error. */
    static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            withinRun(Duration.ofSeconds(60), "close " + c.getClass().getSimpleName(), c::close);
        } catch (Exception e) {
            System.err.println("close failed: " + e);
        }
    }
}
