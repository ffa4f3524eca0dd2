package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(Report.class)
class SimpleConsumerTest {
    static final Duration AWAIT = Duration.ofSeconds(5); // Apache clamps long polling to [5 s, 20 s]
    static final Duration INVISIBLE = Duration.ofSeconds(15); // >= Apache's 10 s minimum
    static final Duration STARTUP = Duration.ofSeconds(40);

    private static List<MessageView> receive(SimpleConsumer consumer) throws Exception {
        return CompatEnv.within(AWAIT.plusSeconds(20), "receive", () -> consumer.receive(16, INVISIBLE));
    }

    @Test
    void receiveChangeInvisibleDurationAndAck() throws Exception {
        CompatEnv.ensureResources();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.TOPIC_SIMPLE;
        SimpleConsumer consumer = CompatEnv.within(STARTUP, "SimpleConsumer build/start",
            () -> provider.newSimpleConsumerBuilder().setClientConfiguration(CompatEnv.clientConfiguration())
                .setConsumerGroup(CompatEnv.GROUP_SIMPLE).setAwaitDuration(AWAIT)
                .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                .build());
        Producer producer = null;
        try {
            producer = CompatEnv.within(STARTUP, "Producer build/start", () -> provider.newProducerBuilder()
                .setClientConfiguration(CompatEnv.clientConfiguration()).setTopics(topic).build());
            Map<String, Integer> sent = new HashMap<>();
            for (int i = 0; i < 3; i++) {
                final Producer p = producer;
                final int n = i;
                String id = CompatEnv.within(Duration.ofSeconds(30), "send", () -> p.send(provider.newMessageBuilder()
                    .setTopic(topic).setTag("TagS").setKeys("k" + n).addProperty("index", String.valueOf(n))
                    .setBody(("simple-" + n).getBytes(StandardCharsets.UTF_8)).build())).getMessageId().toString();
                sent.put(id, i);
            }

            Map<String, MessageView> got = new HashMap<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (got.size() < sent.size()) {
                if (System.nanoTime() > deadline) {
                    fail("timed out: received " + got.keySet() + " of " + sent.keySet());
                }
                for (MessageView m : receive(consumer)) {
                    String id = m.getMessageId().toString();
                    assertTrue(sent.containsKey(id), "unexpected message " + id);
                    assertFalse(got.containsKey(id), "message " + id + " delivered twice");
                    got.put(id, m);
                }
            }
            boolean first = true;
            for (Map.Entry<String, MessageView> e : got.entrySet()) {
                MessageView m = e.getValue();
                int i = sent.get(e.getKey());
                assertEquals(topic, m.getTopic());
                assertEquals("simple-" + i, StandardCharsets.UTF_8.decode(m.getBody()).toString());
                assertEquals("TagS", m.getTag().orElse(null));
                assertEquals(List.of("k" + i), List.copyOf(m.getKeys()));
                assertEquals(String.valueOf(i), m.getProperties().get("index"));
                assertEquals(1, m.getDeliveryAttempt(), "first delivery must have delivery attempt 1");
                assertTrue(m.getBornTimestamp() > 0, "born timestamp missing");
                if (first) {
                    first = false;
                    // The Java simple consumer stores the new receipt handle from the response in the view;
                    // the ack below only succeeds with that handle.
                    CompatEnv.withinRun(Duration.ofSeconds(15), "changeInvisibleDuration",
                        () -> consumer.changeInvisibleDuration(m, INVISIBLE));
                }
                CompatEnv.withinRun(Duration.ofSeconds(15), "ack", () -> consumer.ack(m)); // throws unless OK
            }
            List<MessageView> extra = receive(consumer);
            assertTrue(extra.isEmpty(), "nothing else may be delivered after the acks, got " + extra);
            CompatEnv.close(producer);
            CompatEnv.close(consumer);
        } catch (Throwable t) {
            CompatEnv.closeQuietly(producer);
            CompatEnv.closeQuietly(consumer);
            throw t;
        }
    }
}
