package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(Report.class)
class PushConsumerTest {
    static final Duration STARTUP = Duration.ofSeconds(40);
    static final int N = 20;

    @Test
    void receivesEveryMessageSent() throws Exception {
        CompatEnv.ensureResources();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.TOPIC_PUSH;
        Map<String, MessageView> consumed = new ConcurrentHashMap<>();
        List<String> duplicates = new CopyOnWriteArrayList<>();
        PushConsumer consumer = CompatEnv.within(STARTUP, "PushConsumer build/start",
            () -> provider.newPushConsumerBuilder().setClientConfiguration(CompatEnv.clientConfiguration())
                .setConsumerGroup(CompatEnv.GROUP_PUSH)
                .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                .setMessageListener(m -> {
                    if (consumed.putIfAbsent(m.getMessageId().toString(), m) != null) {
                        duplicates.add(m.getMessageId().toString());
                    }
                    return ConsumeResult.SUCCESS;
                })
                .build());
        Producer producer = null;
        try {
            producer = CompatEnv.within(STARTUP, "Producer build/start", () -> provider.newProducerBuilder()
                .setClientConfiguration(CompatEnv.clientConfiguration()).setTopics(topic).build());
            Set<String> sent = new HashSet<>();
            for (int i = 0; i < N; i++) {
                final Producer p = producer;
                final int n = i;
                sent.add(CompatEnv.within(Duration.ofSeconds(30), "send", () -> p.send(provider.newMessageBuilder()
                    .setTopic(topic).setTag("TagP").setKeys("push-" + n)
                    .setBody(("push-" + n).getBytes(StandardCharsets.UTF_8)).build())).getMessageId().toString());
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!consumed.keySet().containsAll(sent)) {
                if (System.nanoTime() > deadline) {
                    Set<String> missing = new HashSet<>(sent);
                    missing.removeAll(consumed.keySet());
                    fail("push consumer got " + consumed.size() + " of " + N + " messages in 60 s; missing " + missing);
                }
                Thread.sleep(100);
            }
            Thread.sleep(2000); // give a wrong redelivery or a stray message a moment to show up
            Set<String> unexpected = new HashSet<>(consumed.keySet());
            unexpected.removeAll(sent);
            assertTrue(unexpected.isEmpty(), "received messages that were never sent: " + unexpected);
            assertTrue(duplicates.isEmpty(), "received messages twice: " + duplicates);
            for (MessageView m : consumed.values()) {
                assertEquals(topic, m.getTopic());
                assertEquals("TagP", m.getTag().orElse(null));
                assertEquals(1, m.getDeliveryAttempt(), "delivery attempt of " + m.getMessageId());
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
