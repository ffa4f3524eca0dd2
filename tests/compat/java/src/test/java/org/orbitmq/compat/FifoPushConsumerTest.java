package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A PushConsumer of a FIFO group on a FIFO topic: every message group is consumed in send order, one message of a
 * group at a time, each message exactly once.
 */
@ExtendWith(Report.class)
class FifoPushConsumerTest {
    static final Duration STARTUP = Duration.ofSeconds(40);
    static final int GROUPS = 3;
    static final int PER_GROUP = 10;

    @Test
    void consumesEachMessageGroupInSendOrder() throws Exception {
        CompatEnv.ensureMessageTypeResources();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.TOPIC_FIFO;
        List<String> groups = new ArrayList<>();
        for (int g = 0; g < GROUPS; g++) {
            groups.add("order-" + g);
        }
        Map<String, List<String>> consumed = new ConcurrentHashMap<>(); // message group -> ids, consumption order
        Set<String> busy = ConcurrentHashMap.newKeySet(); // message groups whose listener call is running
        List<String> problems = new CopyOnWriteArrayList<>();
        AtomicInteger total = new AtomicInteger();
        PushConsumer consumer = CompatEnv.within(STARTUP, "PushConsumer build/start",
            () -> provider.newPushConsumerBuilder().setClientConfiguration(CompatEnv.clientConfiguration())
                .setConsumerGroup(CompatEnv.GROUP_FIFO)
                .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                .setMessageListener(m -> {
                    String group = m.getMessageGroup().orElse(null);
                    String id = m.getMessageId().toString();
                    if (group == null) {
                        problems.add("message " + id + " without message group");
                        return ConsumeResult.SUCCESS;
                    }
                    if (!busy.add(group)) {
                        problems.add("two messages of group " + group + " consumed at the same time (" + id + ")");
                    }
                    try {
                        if (m.getDeliveryAttempt() != 1) {
                            problems.add("message " + id + " has delivery attempt " + m.getDeliveryAttempt());
                        }
                        consumed.computeIfAbsent(group, k -> Collections.synchronizedList(new ArrayList<>())).add(id);
                        total.incrementAndGet();
                        Thread.sleep(20); // make an overlapping delivery of the same group visible
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    } finally {
                        busy.remove(group);
                    }
                    return ConsumeResult.SUCCESS;
                })
                .build());
        Producer producer = null;
        try {
            producer = CompatEnv.within(STARTUP, "Producer build/start", () -> provider.newProducerBuilder()
                .setClientConfiguration(CompatEnv.clientConfiguration()).setTopics(topic).build());
            // Each message group is sent in order from its own thread, the groups concurrently.
            final Producer p = producer;
            Map<String, CompletableFuture<List<String>>> sending = new HashMap<>();
            for (String group : groups) {
                sending.put(group, CompletableFuture.supplyAsync(() -> {
                    List<String> ids = new ArrayList<>();
                    for (int i = 0; i < PER_GROUP; i++) {
                        final int n = i;
                        try {
                            ids.add(CompatEnv.within(Duration.ofSeconds(30), "send", () -> p.send(
                                provider.newMessageBuilder().setTopic(topic).setTag("TagF").setMessageGroup(group)
                                    .setBody((group + "/" + n).getBytes(StandardCharsets.UTF_8)).build()))
                                .getMessageId().toString());
                        } catch (Exception e) {
                            throw new RuntimeException("send to group " + group + " failed", e);
                        }
                    }
                    return ids;
                }));
            }
            Map<String, List<String>> sent = new HashMap<>();
            for (String group : groups) {
                sent.put(group, sending.get(group).get(60, TimeUnit.SECONDS));
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (total.get() < GROUPS * PER_GROUP) {
                if (System.nanoTime() > deadline) {
                    fail("push consumer got " + total.get() + " of " + GROUPS * PER_GROUP + " messages in 60 s: "
                        + consumed);
                }
                Thread.sleep(100);
            }
            Thread.sleep(2000); // give a duplicate or stray delivery a moment to show up
            assertTrue(problems.isEmpty(), "FIFO violations: " + problems);
            assertEquals(groups.size(), consumed.size(), "message groups consumed: " + consumed.keySet());
            for (String group : groups) {
                assertEquals(sent.get(group), consumed.get(group),
                    "message group " + group + " not consumed exactly once each, in send order");
            }
            CompatEnv.close(producer);
            CompatEnv.close(consumer);
        } catch (Throwable t) {
            CompatEnv.closeQuietly(producer);
            CompatEnv.closeQuietly(consumer);
            throw t;
        }
    }
}
