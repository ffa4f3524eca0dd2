package org.orbitmq.perf;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;

/**
 * Produce-then-consume load with Apache's official RocketMQ 5 Java client, for tests/perf/vs_apache.sh.
 *
 * <p>Steps: (1) a SimpleConsumer of the group does one empty receive, so the group exists (and its offsets start at
 * the beginning) before anything is sent; (2) WARMUP messages are sent and not measured (JIT, routes, connections);
 * (3) COUNT messages are sent asynchronously, INFLIGHT at most outstanding (a semaphore): measured; (4) all
 * WARMUP + COUNT messages are consumed, either by RECEIVERS threads looping SimpleConsumer receive(BATCH) + one ack per
 * message (acks sent concurrently, awaited before the next receive), or by a PushConsumer with RECEIVERS consumption
 * threads: measured. For each measured phase it prints one JSON line on stdout with the rate and the server's CPU
 * clock ticks over that phase (utime + stime from /proc/PID/stat, summed over --pids). Progress goes to stderr.
 */
public final class ApacheLoad {
    private static final String USAGE = String.join("\n",
        "usage: ApacheLoad --endpoint HOST:PORT [--topic perf] [--group perf-consumer] [--count 100000]",
        "                  [--warmup 5000] [--size 1024] [--inflight 512] [--consumer simple|push]",
        "                  [--receivers 16] [--batch 32] [--pids PID,PID,...] [--timeout-s 600]");

    private String endpoint;
    private String topic = "perf";
    private String group = "perf-consumer";
    private long count = 100_000;
    private long warmup = 5_000;
    private int size = 1024;
    private int inflight = 512;
    private String consumer = "simple";
    private int receivers = 16;
    private int batch = 32;
    private final List<Long> pids = new ArrayList<>();
    private long timeoutS = 600;

    public static void main(String[] args) throws Exception {
        ApacheLoad load = new ApacheLoad();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                System.out.println(USAGE);
                return;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(a + " needs a value\n" + USAGE);
            }
            String v = args[++i];
            switch (a) {
                case "--endpoint" -> load.endpoint = v;
                case "--topic" -> load.topic = v;
                case "--group" -> load.group = v;
                case "--count" -> load.count = Long.parseLong(v);
                case "--warmup" -> load.warmup = Long.parseLong(v);
                case "--size" -> load.size = Integer.parseInt(v);
                case "--inflight" -> load.inflight = Integer.parseInt(v);
                case "--consumer" -> load.consumer = v;
                case "--receivers" -> load.receivers = Integer.parseInt(v);
                case "--batch" -> load.batch = Integer.parseInt(v);
                case "--timeout-s" -> load.timeoutS = Long.parseLong(v);
                case "--pids" -> {
                    for (String p : v.split(",")) {
                        if (!p.isBlank()) {
                            load.pids.add(Long.parseLong(p.trim()));
                        }
                    }
                }
                default -> throw new IllegalArgumentException("unknown " + a + "\n" + USAGE);
            }
        }
        if (load.endpoint == null) {
            throw new IllegalArgumentException("--endpoint is required\n" + USAGE);
        }
        if (!load.consumer.equals("simple") && !load.consumer.equals("push")) {
            throw new IllegalArgumentException("--consumer must be simple or push");
        }
        load.run();
        // The client's schedulers are not all daemons.
        System.exit(0);
    }

    private static void log(String s) {
        System.err.println("[apache-load] " + s);
    }

    /** utime + stime of every server process, clock ticks. */
    private long serverTicks() throws Exception {
        long sum = 0;
        for (long pid : pids) {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            // f[0] is field 3 (state): utime is field 14, stime field 15.
            sum += Long.parseLong(f[11]) + Long.parseLong(f[12]);
        }
        return sum;
    }

    private void report(String phase, long msgs, long nanos, long ticks, long errors) {
        double secs = nanos / 1e9;
        System.out.printf("{\"phase\":\"%s\",\"client\":\"rocketmq-client-java\",\"msgs\":%d,\"secs\":%.3f,"
                + "\"msgs_per_sec\":%.0f,\"server_ticks\":%d,\"errors\":%d,\"size\":%d,\"inflight\":%d,"
                + "\"consumer\":\"%s\",\"receivers\":%d,\"batch\":%d}%n",
            phase, msgs, secs, msgs / secs, ticks, errors, size, inflight, consumer, receivers, batch);
        System.out.flush();
    }

    private void run() throws Exception {
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ClientConfiguration config = ClientConfiguration.newBuilder().setEndpoints(endpoint).enableSsl(false)
            .setRequestTimeout(Duration.ofSeconds(10)).build();
        Map<String, FilterExpression> subscription =
            Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG));
        Duration await = Duration.ofSeconds(5); // Apache's proxy refuses less than 5 s of long polling
        Duration invisible = Duration.ofSeconds(60);

        // (1) The group exists and has looked at the topic before anything is sent.
        SimpleConsumer simple = provider.newSimpleConsumerBuilder().setClientConfiguration(config)
            .setConsumerGroup(group).setAwaitDuration(await).setSubscriptionExpressions(subscription).build();
        long primeDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                List<MessageView> got = simple.receive(batch, invisible);
                if (!got.isEmpty()) {
                    throw new IllegalStateException("topic " + topic + " is not empty: use a fresh topic");
                }
                break;
            } catch (IllegalStateException e) {
                throw e;
            } catch (Exception e) {
                // Apache answers the first receive before the client's settings arrived with an error.
                if (System.nanoTime() > primeDeadline) {
                    throw e;
                }
                log("priming receive failed (" + e + "), retrying");
                Thread.sleep(500);
            }
        }
        log("consumer group " + group + " primed");

        // (2) + (3) produce.
        byte[] body = new byte[size];
        new Random(42).nextBytes(body);
        Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build();
        Semaphore window = new Semaphore(inflight);
        AtomicLong errors = new AtomicLong();
        send(provider, producer, body, window, warmup, errors);
        log("warm-up: " + warmup + " sent, " + errors.get() + " errors");
        errors.set(0);
        long ticks0 = serverTicks();
        long t0 = System.nanoTime();
        send(provider, producer, body, window, count, errors);
        long t1 = System.nanoTime();
        long ticks1 = serverTicks();
        report("produce", count, t1 - t0, ticks1 - ticks0, errors.get());
        producer.close();

        // (4) consume everything sent.
        long target = warmup + count;
        AtomicLong consumed = new AtomicLong();
        AtomicLong consumeErrors = new AtomicLong();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
        if (consumer.equals("simple")) {
            ticks0 = serverTicks();
            t0 = System.nanoTime();
            List<Thread> threads = new ArrayList<>();
            for (int r = 0; r < receivers; r++) {
                Thread t = new Thread(() -> {
                    while (consumed.get() < target && System.nanoTime() < deadline) {
                        try {
                            List<MessageView> got = simple.receive(batch, invisible);
                            List<CompletableFuture<Void>> acks = new ArrayList<>(got.size());
                            for (MessageView m : got) {
                                acks.add(simple.ackAsync(m));
                            }
                            for (CompletableFuture<Void> f : acks) {
                                try {
                                    f.get(30, TimeUnit.SECONDS);
                                } catch (Exception e) {
                                    consumeErrors.incrementAndGet();
                                }
                            }
                            consumed.addAndGet(got.size());
                        } catch (Exception e) {
                            consumeErrors.incrementAndGet();
                        }
                    }
                }, "receiver-" + r);
                t.start();
                threads.add(t);
            }
            for (Thread t : threads) {
                t.join();
            }
            t1 = System.nanoTime();
            ticks1 = serverTicks();
            simple.close();
        } else {
            simple.close();
            CountDownLatch done = new CountDownLatch(1);
            ticks0 = serverTicks();
            t0 = System.nanoTime();
            PushConsumer push = provider.newPushConsumerBuilder().setClientConfiguration(config)
                .setConsumerGroup(group).setSubscriptionExpressions(subscription)
                .setConsumptionThreadCount(receivers).setMessageListener(m -> {
                    if (consumed.incrementAndGet() == target) {
                        done.countDown();
                    }
                    return ConsumeResult.SUCCESS;
                }).build();
            done.await(Math.max(1, (deadline - System.nanoTime()) / 1_000_000), TimeUnit.MILLISECONDS);
            t1 = System.nanoTime();
            ticks1 = serverTicks();
            push.close();
        }
        if (consumed.get() < target) {
            log("consumed only " + consumed.get() + " of " + target + " before the timeout");
        }
        report("consume", consumed.get(), t1 - t0, ticks1 - ticks0, consumeErrors.get());
    }

    private void send(ClientServiceProvider provider, Producer producer, byte[] body, Semaphore window, long n,
        AtomicLong errors) throws InterruptedException {
        for (long i = 0; i < n; i++) {
            window.acquire();
            Message msg = provider.newMessageBuilder().setTopic(topic).setBody(body).build();
            producer.sendAsync(msg).whenComplete((receipt, e) -> {
                if (e != null && errors.incrementAndGet() <= 3) {
                    log("send failed: " + e);
                }
                window.release();
            });
        }
        window.acquire(inflight);
        window.release(inflight);
    }
}
