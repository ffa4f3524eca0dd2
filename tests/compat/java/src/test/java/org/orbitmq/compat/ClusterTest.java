package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.java.impl.producer.SendReceiptImpl;
import org.apache.rocketmq.client.java.message.MessageViewImpl;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The official Java client (5.2.0) against an OrbitMQ cluster (issue 21): two name servers and two brokers, real
 * processes on free 127.0.0.1 ports, started here from {@code $ORBITMQ_BIN} (so the test is skipped with
 * {@code ORBITMQ_COMPAT_SERVER=apache}; it ignores {@code ORBITMQ_ENDPOINT}).
 *
 * <p>The clients' endpoint is the first name server only; the second must list both brokers too. A Producer's sends
 * spread over both brokers; a PushConsumer and a SimpleConsumer (two groups) each get every message, from both. Then
 * broker-a (the first broker of the route) is SIGKILLed: within the name servers' expiry it leaves both name servers'
 * routes, and the clients carry on: every send of a second batch succeeds (the client's own retries included) and
 * both consumers get all of it. Timings and counts go to stdout and into every assertion message.
 */
@ExtendWith(Report.class)
class ClusterTest {
    static final long EXPIRY_MS = Long.parseLong(System.getenv().getOrDefault("ORBITMQ_CLUSTER_EXPIRY_MS", "3000"));
    static final long REGISTER_MS = 500;
    static final Duration LEAVE_MARGIN = Duration.ofSeconds(2);
    static final int COUNT = 100;
    static final Duration STARTUP = Duration.ofSeconds(40);
    static final Duration AWAIT = Duration.ofSeconds(5);
    static final Duration INVISIBLE = Duration.ofSeconds(20);
    static final String TOPIC = CompatEnv.unique("cluster");
    static final String GROUP_PUSH = CompatEnv.unique("cluster-push");
    static final String GROUP_SIMPLE = CompatEnv.unique("cluster-simple");
    static final String KILLED = "broker-a";
    static final String SURVIVOR = "broker-b";

    /** Two name servers and broker-a, broker-b, each a process logging to its own file. */
    static final class Cluster implements AutoCloseable {
        final String bin;
        final Path dir;
        final Map<String, Process> procs = new LinkedHashMap<>();
        final Map<String, String> addrs = new HashMap<>();

        Cluster() throws Exception {
            String given = System.getenv("ORBITMQ_BIN");
            // tests/compat/java is the working directory under Maven.
            bin = given != null && !given.isEmpty() ? given
                : Paths.get("").toAbsolutePath().resolve("../../../target/debug/orbitmq").normalize().toString();
            if (!Files.isExecutable(Paths.get(bin))) {
                throw new IllegalStateException("the server binary " + bin
                    + " does not exist (build it, or set ORBITMQ_BIN)");
            }
            dir = Files.createTempDirectory("orbitmq-compat-java-cluster-");
        }

        private void spawn(String name, String... args) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(bin));
            cmd.addAll(List.of(args));
            procs.put(name, new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(dir.resolve(name + ".log").toFile()).redirectInput(ProcessBuilder.Redirect.PIPE)
                .start());
        }

        String log(String name) throws Exception {
            String s = Files.readString(dir.resolve(name + ".log"), StandardCharsets.UTF_8);
            return s.substring(Math.max(0, s.length() - 4000));
        }

        private String waitReady(String name) throws Exception {
            Pattern ready = Pattern.compile("ready on (\\S+)");
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (System.nanoTime() < deadline) {
                Matcher m = ready.matcher(Files.readString(dir.resolve(name + ".log"), StandardCharsets.UTF_8));
                if (m.find()) {
                    addrs.put(name, m.group(1));
                    return m.group(1);
                }
                if (!procs.get(name).isAlive()) {
                    break;
                }
                Thread.sleep(50);
            }
            throw new IllegalStateException(name + " did not print 'ready on <addr>' within 30 s; log:\n" + log(name));
        }

        void start() throws Exception {
            for (String ns : List.of("namesrv-1", "namesrv-2")) {
                spawn(ns, "namesrv", "--listen", "127.0.0.1:0", "--broker-expiry-ms", String.valueOf(EXPIRY_MS));
            }
            String namesrv = waitReady("namesrv-1") + ";" + waitReady("namesrv-2");
            for (String b : List.of("broker-a", "broker-b")) {
                spawn(b, "broker", "--namesrv", namesrv, "--listen", "127.0.0.1:0", "--broker-name", b, "--data-dir",
                    dir.resolve(b).toString(), "--metrics-listen", "off", "--register-interval-ms",
                    String.valueOf(REGISTER_MS));
            }
            waitReady("broker-a");
            waitReady("broker-b");
        }

        String ns(int i) {
            return addrs.get("namesrv-" + i);
        }

        void kill(String name) throws Exception {
            Process p = procs.get(name);
            p.destroyForcibly(); // SIGKILL
            assertTrue(p.waitFor(10, TimeUnit.SECONDS), name + " did not die");
        }

        /** {@code orbitmq admin --endpoints ns --json ARGS}: its stdout, or null if it failed and !check. */
        String admin(String ns, boolean check, String... args) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(bin, "admin", "--endpoints", ns, "--json"));
            cmd.addAll(List.of(args));
            File out = File.createTempFile("orbitmq-admin-", ".out");
            File err = File.createTempFile("orbitmq-admin-", ".err");
            try {
                Process p = new ProcessBuilder(cmd).redirectOutput(out).redirectError(err)
                    .redirectInput(ProcessBuilder.Redirect.PIPE).start();
                p.getOutputStream().close();
                if (!p.waitFor(60, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new AssertionError("admin timed out: " + cmd);
                }
                if (p.exitValue() != 0) {
                    if (check) {
                        throw new AssertionError("admin failed (exit " + p.exitValue() + "): " + cmd + "\n"
                            + Files.readString(err.toPath(), StandardCharsets.UTF_8));
                    }
                    return null;
                }
                return Files.readString(out.toPath(), StandardCharsets.UTF_8);
            } finally {
                out.delete();
                err.delete();
            }
        }

        @Override
        public void close() {
            for (Process p : procs.values()) {
                p.destroy(); // SIGTERM
            }
            for (Process p : procs.values()) {
                try {
                    if (!p.waitFor(10, TimeUnit.SECONDS)) {
                        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    }
                } catch (InterruptedException e) {
                    p.destroyForcibly();
                }
            }
        }
    }

    // The admin answers are small flat JSON objects; the suite has no JSON library, so each object of an array is
    // picked out with a regex (no nested braces inside them).
    private static final Pattern OBJECT = Pattern.compile("\\{[^{}]*\\}");
    private static final Pattern BROKER_NAME = Pattern.compile("\"broker_name\":\"([^\"]*)\"");
    private static final Pattern MAX_OFFSET = Pattern.compile("\"max_offset\":(\\d+)");

    private static String field(Pattern p, String obj) {
        Matcher m = p.matcher(obj);
        return m.find() ? m.group(1) : null;
    }

    /** Broker names a name server lists ({@code admin cluster list}). */
    static Set<String> brokers(Cluster c, String ns) throws Exception {
        Set<String> names = new HashSet<>();
        Matcher m = OBJECT.matcher(c.admin(ns, true, "cluster", "list"));
        while (m.find()) {
            names.add(field(BROKER_NAME, m.group()));
        }
        return names;
    }

    /** Broker name to number of queues of TOPIC's route at a name server (empty when there is none). */
    static Map<String, Integer> route(Cluster c, String ns) throws Exception {
        Map<String, Integer> byBroker = new TreeMap<>();
        String out = c.admin(ns, false, "topic", "route", "--topic", TOPIC);
        if (out != null) {
            Matcher m = OBJECT.matcher(out);
            while (m.find()) {
                byBroker.merge(field(BROKER_NAME, m.group()), 1, Integer::sum);
            }
        }
        return byBroker;
    }

    /** Broker name to messages TOPIC holds there (sum of max offsets), from {@code admin topic status}. */
    static Map<String, Long> held(Cluster c, String ns) throws Exception {
        Map<String, Long> byBroker = new TreeMap<>();
        Matcher m = OBJECT.matcher(c.admin(ns, true, "topic", "status", "--topic", TOPIC));
        while (m.find()) {
            byBroker.merge(field(BROKER_NAME, m.group()), Long.parseLong(field(MAX_OFFSET, m.group())), Long::sum);
        }
        return byBroker;
    }

    interface Check {
        boolean ok() throws Exception;
    }

    /** Polls every 50 ms until check is true, failing at the deadline (System.nanoTime()). */
    static void waitUntil(long deadlineNanos, Supplier<String> what, Check check) throws Exception {
        while (!check.ok()) {
            if (System.nanoTime() > deadlineNanos) {
                fail("timed out waiting for " + what.get());
            }
            Thread.sleep(50);
        }
    }

    static long in(Duration d) {
        return System.nanoTime() + d.toNanos();
    }

    static double secondsSince(long startNanos) {
        return Math.round((System.nanoTime() - startNanos) / 1e7) / 100.0;
    }

    /** Sends COUNT messages one after the other; each must succeed. Returns message id to broker name. */
    static Map<String, String> sendBatch(ClientServiceProvider provider, Producer producer, String tag,
                                         Map<String, Object> report) throws Exception {
        Map<String, String> sent = new LinkedHashMap<>();
        double slowest = 0;
        for (int i = 0; i < COUNT; i++) {
            final int n = i;
            long t0 = System.nanoTime();
            SendReceipt r;
            try {
                r = CompatEnv.within(Duration.ofSeconds(30), "send " + tag + "-" + n, () -> producer.send(
                    provider.newMessageBuilder().setTopic(TOPIC).setTag(tag)
                        .setBody((tag + "-" + n).getBytes(StandardCharsets.UTF_8)).build()));
            } catch (Exception e) {
                throw new AssertionError("send " + tag + "-" + n + " failed after " + secondsSince(t0) + " s (after "
                    + sent.size() + " sends succeeded): " + e + "; " + report, e);
            }
            slowest = Math.max(slowest, secondsSince(t0));
            sent.put(r.getMessageId().toString(), ((SendReceiptImpl) r).getMessageQueue().getBroker().getName());
        }
        report.put(tag + "_slowest_send_s", slowest);
        Map<String, Integer> perBroker = new TreeMap<>();
        sent.values().forEach(b -> perBroker.merge(b, 1, Integer::sum));
        report.put(tag + "_sends_per_broker", perBroker);
        return sent;
    }

    /** Receives and acks until every id of want arrived; failed receives (the dead broker) are counted. */
    static Map<String, String> receiveAll(SimpleConsumer consumer, Set<String> want, Duration limit, String key,
                                          Map<String, Object> report) throws Exception {
        Map<String, String> got = new HashMap<>();
        int errors = 0;
        String firstError = null;
        long deadline = in(limit);
        while (!got.keySet().containsAll(want)) {
            if (System.nanoTime() > deadline) {
                fail("simple consumer got " + got.keySet().stream().filter(want::contains).count() + " of "
                    + want.size() + " in " + limit + " (" + errors + " receive errors, first: " + firstError + "); "
                    + report);
            }
            List<MessageView> batch;
            try {
                batch = CompatEnv.within(AWAIT.plusSeconds(20), "receive", () -> consumer.receive(32, INVISIBLE));
            } catch (AssertionError e) {
                throw e;
            } catch (Exception e) {
                errors++;
                firstError = firstError == null ? e.toString() : firstError;
                Thread.sleep(100); // a refused connection fails at once: do not spin
                continue;
            }
            for (MessageView m : batch) {
                got.put(m.getMessageId().toString(), ((MessageViewImpl) m).getMessageQueue().getBroker().getName());
                CompatEnv.withinRun(Duration.ofSeconds(15), "ack", () -> consumer.ack(m));
            }
        }
        report.put(key + "_receive_errors", errors);
        if (firstError != null) {
            report.put(key + "_first_receive_error", firstError.substring(0, Math.min(300, firstError.length())));
        }
        return got;
    }

    static void waitPushed(Map<String, String> pushed, Set<String> want, Duration limit, String what,
                           Map<String, Object> report) throws Exception {
        waitUntil(in(limit), () -> "the push consumer to get " + what + ": " + want.stream().filter(pushed::containsKey)
            .count() + " of " + want.size() + "; " + report, () -> pushed.keySet().containsAll(want));
    }

    @Test
    void twoBrokersSpreadAndSurviveAKilledBroker() throws Exception {
        Assumptions.assumeFalse("apache".equals(System.getenv("ORBITMQ_COMPAT_SERVER")),
            "starts its own OrbitMQ cluster (orbitmq namesrv/broker processes)");
        Map<String, Object> report = new LinkedHashMap<>();
        long started = System.nanoTime();
        try (Cluster c = new Cluster()) {
            c.start();
            String ns1 = c.ns(1);
            String ns2 = c.ns(2);
            Set<String> both = Set.of("broker-a", "broker-b");
            for (String ns : List.of(ns1, ns2)) {
                waitUntil(in(Duration.ofSeconds(10)), () -> "both brokers registered at " + ns,
                    () -> brokers(c, ns).equals(both));
            }
            c.admin(ns1, true, "topic", "create", "--topic", TOPIC, "--read-queues", "4", "--write-queues", "4");
            c.admin(ns1, true, "group", "create", "--group", GROUP_PUSH);
            c.admin(ns1, true, "group", "create", "--group", GROUP_SIMPLE);
            for (String ns : List.of(ns1, ns2)) {
                waitUntil(in(Duration.ofSeconds(5)), () -> "the route on both brokers at " + ns,
                    () -> route(c, ns).equals(Map.of("broker-a", 4, "broker-b", 4)));
            }

            ClientServiceProvider provider = ClientServiceProvider.loadService();
            ClientConfiguration config = ClientConfiguration.newBuilder().setEndpoints(ns1).enableSsl(false)
                .setRequestTimeout(Duration.ofSeconds(5)).build();
            Map<String, String> pushed = new ConcurrentHashMap<>();
            Set<String> pushedTwice = ConcurrentHashMap.newKeySet();
            PushConsumer push = null;
            SimpleConsumer simple = null;
            Producer producer = null;
            try {
                push = CompatEnv.within(STARTUP, "PushConsumer build/start", () -> provider.newPushConsumerBuilder()
                    .setClientConfiguration(config).setConsumerGroup(GROUP_PUSH)
                    .setSubscriptionExpressions(Map.of(TOPIC, new FilterExpression("*", FilterExpressionType.TAG)))
                    .setMessageListener(m -> {
                        String broker = ((MessageViewImpl) m).getMessageQueue().getBroker().getName();
                        if (pushed.putIfAbsent(m.getMessageId().toString(), broker) != null) {
                            pushedTwice.add(m.getMessageId().toString());
                        }
                        return ConsumeResult.SUCCESS;
                    })
                    .build());
                simple = CompatEnv.within(STARTUP, "SimpleConsumer build/start", () -> provider
                    .newSimpleConsumerBuilder()
                    .setClientConfiguration(config).setConsumerGroup(GROUP_SIMPLE).setAwaitDuration(AWAIT)
                    .setSubscriptionExpressions(Map.of(TOPIC, new FilterExpression("*", FilterExpressionType.TAG)))
                    .build());
                final SimpleConsumer sc = simple;
                producer = CompatEnv.within(STARTUP, "Producer build/start", () -> provider.newProducerBuilder()
                    .setClientConfiguration(config).setTopics(TOPIC).build());
                final Producer p = producer;

                // Sends spread over both brokers; both consumers get every message, from both.
                Map<String, String> before = sendBatch(provider, p, "before", report);
                assertEquals(both, new HashSet<>(before.values()), "sends reached both brokers; " + report);
                Map<String, Long> held = held(c, ns2);
                report.put("before_held_per_broker", held);
                assertTrue(held.keySet().equals(both) && held.values().stream().allMatch(n -> n > 0)
                    && held.values().stream().mapToLong(Long::longValue).sum() == COUNT,
                    "admin topic status must show the " + COUNT + " messages on both brokers; " + report);
                long t0 = System.nanoTime();
                Map<String, String> simpleBefore =
                    receiveAll(sc, before.keySet(), Duration.ofSeconds(60), "before", report);
                assertEquals(both, new HashSet<>(simpleBefore.values()),
                    "simple consumer read both brokers; " + report);
                waitPushed(pushed, before.keySet(), Duration.ofSeconds(60), "the first batch", report);
                report.put("before_consumed_s", secondsSince(t0));
                assertEquals(both, new HashSet<>(pushed.values()), "push consumer read both brokers; " + report);

                // SIGKILL broker-a: it leaves both name servers' routes within the expiry.
                c.kill(KILLED);
                long killed = System.nanoTime();
                long leaveBy = killed + Duration.ofMillis(EXPIRY_MS).plus(LEAVE_MARGIN).toNanos();
                for (String ns : List.of(ns1, ns2)) {
                    waitUntil(leaveBy, () -> KILLED + " to leave the route at " + ns + " within " + EXPIRY_MS
                        + " ms + " + LEAVE_MARGIN + " of the kill", () -> route(c, ns).equals(Map.of(SURVIVOR, 4)));
                }
                report.put("left_routes_after_s", secondsSince(killed));
                assertEquals(Set.of(SURVIVOR), brokers(c, ns1), report.toString());
                assertEquals(Set.of(SURVIVOR), brokers(c, ns2), report.toString());

                // The clients carry on: every send succeeds (the client's cached route lists the dead broker until
                // its 30 s refresh; it retries a failed send on another broker), and both consumers get them all.
                t0 = System.nanoTime();
                Map<String, String> after = sendBatch(provider, p, "after", report);
                report.put("after_sent_s", secondsSince(t0));
                assertEquals(Set.of(SURVIVOR), new HashSet<>(after.values()), report.toString());
                t0 = System.nanoTime();
                receiveAll(sc, after.keySet(), Duration.ofSeconds(60), "after", report);
                waitPushed(pushed, after.keySet(), Duration.ofSeconds(60), "the second batch", report);
                report.put("after_consumed_s", secondsSince(t0));
                assertTrue(pushedTwice.isEmpty(), "push consumer got messages twice: " + pushedTwice);
                report.put("scenario_s", secondsSince(started));
                System.out.println("cluster scenario: " + report);

                CompatEnv.close(producer);
                producer = null;
                CompatEnv.close(simple);
                simple = null;
                CompatEnv.close(push);
                push = null;
            } finally {
                CompatEnv.closeQuietly(producer);
                CompatEnv.closeQuietly(simple);
                CompatEnv.closeQuietly(push);
            }
        }
    }
}
