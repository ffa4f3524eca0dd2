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
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A transactional producer with a TransactionChecker: a transaction the application commits is delivered at once; one
 * it leaves open is resolved by the server's check-back (the checker answers COMMIT) and then delivered. The checker
 * is consulted for the open transaction only, once.
 */
@ExtendWith(Report.class)
class TransactionProducerTest {
    static final Duration AWAIT = Duration.ofSeconds(5); // Apache clamps long polling to [5 s, 20 s]
    static final Duration INVISIBLE = Duration.ofSeconds(15); // >= Apache's 10 s minimum
    static final Duration STARTUP = Duration.ofSeconds(40);
    // Apache checks half messages older than 6 s every 30 s (first check seen 30-40 s after the send); OrbitMQ ~6 s.
    static final Duration ORPHAN_CHECK = Duration.ofSeconds(100);

    private record Check(long atNanos, String messageId, String topic, String body) {
    }

    @Test
    void checkerCommitsTheTransactionTheApplicationLeftOpen() throws Exception {
        CompatEnv.ensureMessageTypeResources();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.TOPIC_TX;
        List<Check> checks = new CopyOnWriteArrayList<>();
        Producer producer = CompatEnv.within(STARTUP, "transactional Producer build/start",
            () -> provider.newProducerBuilder().setClientConfiguration(CompatEnv.clientConfiguration())
                .setTopics(topic)
                .setTransactionChecker(m -> {
                    checks.add(new Check(System.nanoTime(), m.getMessageId().toString(), m.getTopic(),
                        StandardCharsets.UTF_8.decode(m.getBody()).toString()));
                    return TransactionResolution.COMMIT;
                })
                .build());
        SimpleConsumer consumer = null;
        try {
            consumer = CompatEnv.within(STARTUP, "SimpleConsumer build/start",
                () -> provider.newSimpleConsumerBuilder().setClientConfiguration(CompatEnv.clientConfiguration())
                    .setConsumerGroup(CompatEnv.GROUP_TX).setAwaitDuration(AWAIT)
                    .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                    .build());
            final Producer p = producer;

            Transaction committedTx = CompatEnv.within(Duration.ofSeconds(15), "beginTransaction", p::beginTransaction);
            SendReceipt committed = CompatEnv.within(Duration.ofSeconds(30), "send half message", () -> p.send(
                provider.newMessageBuilder().setTopic(topic).setTag("TagT")
                    .setBody("committed".getBytes(StandardCharsets.UTF_8)).build(), committedTx));
            CompatEnv.withinRun(Duration.ofSeconds(15), "commit", committedTx::commit);

            Transaction openTx = CompatEnv.within(Duration.ofSeconds(15), "beginTransaction", p::beginTransaction);
            SendReceipt open = CompatEnv.within(Duration.ofSeconds(30), "send half message", () -> p.send(
                provider.newMessageBuilder().setTopic(topic).setTag("TagT")
                    .setBody("left-open".getBytes(StandardCharsets.UTF_8)).build(), openTx));
            long openSentAt = System.nanoTime();
            String committedId = committed.getMessageId().toString();
            String openId = open.getMessageId().toString();
            // The application neither commits nor rolls back openTx.

            Map<String, MessageView> got = new HashMap<>();
            long deadline = openSentAt + ORPHAN_CHECK.toNanos();
            final SimpleConsumer c = consumer;
            while (got.size() < 2) {
                if (System.nanoTime() > deadline) {
                    fail("received " + got.keySet() + " of [" + committedId + ", " + openId + "] within "
                        + ORPHAN_CHECK + "; checker calls: " + checks);
                }
                for (MessageView m : CompatEnv.within(AWAIT.plusSeconds(20), "receive",
                    () -> c.receive(16, INVISIBLE))) {
                    String id = m.getMessageId().toString();
                    assertTrue(id.equals(committedId) || id.equals(openId), "unexpected message " + id);
                    assertFalse(got.containsKey(id), "message " + id + " delivered twice");
                    if (id.equals(openId)) {
                        assertFalse(checks.isEmpty(), "the open transaction's message was delivered before the "
                            + "checker resolved it");
                    }
                    assertEquals(1, m.getDeliveryAttempt(), "delivery attempt of " + id);
                    assertEquals("TagT", m.getTag().orElse(null));
                    got.put(id, m);
                    CompatEnv.withinRun(Duration.ofSeconds(15), "ack", () -> c.ack(m));
                }
            }
            assertEquals("committed", StandardCharsets.UTF_8.decode(got.get(committedId).getBody()).toString());
            assertEquals("left-open", StandardCharsets.UTF_8.decode(got.get(openId).getBody()).toString());
            List<MessageView> extra = CompatEnv.within(AWAIT.plusSeconds(20), "receive",
                () -> c.receive(16, INVISIBLE));
            assertTrue(extra.isEmpty(), "nothing else may be delivered, got " + extra);
            assertEquals(1, checks.size(), "checker calls: " + checks);
            Check check = checks.get(0);
            assertEquals(openId, check.messageId(), "the checker must be asked about the open transaction only");
            assertEquals(topic, check.topic());
            assertEquals("left-open", check.body());
            System.out.printf("TransactionProducerTest: orphan check %.1f s after the send%n",
                (check.atNanos() - openSentAt) / 1e9);
            CompatEnv.close(consumer);
            CompatEnv.close(producer);
        } catch (Throwable t) {
            CompatEnv.closeQuietly(consumer);
            CompatEnv.closeQuietly(producer);
            throw t;
        }
    }
}
