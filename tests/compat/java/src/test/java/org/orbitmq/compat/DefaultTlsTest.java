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
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The Java client on its defaults: {@code ClientConfiguration} with the endpoint and nothing else, so TLS is on
 * (and any certificate is accepted). The server started with its own defaults must serve it: TLS and plaintext on
 * one port, with the self-signed certificate it generated at start. The other tests use {@code enableSsl(false)}.
 */
@ExtendWith(Report.class)
class DefaultTlsTest {
    static final Duration AWAIT = Duration.ofSeconds(5);
    static final Duration INVISIBLE = Duration.ofSeconds(15);
    static final Duration STARTUP = Duration.ofSeconds(40);

    @Test
    void sendAndReceiveOverTlsWithTheDefaultConfiguration() throws Exception {
        String topic = CompatEnv.unique("tls");
        String group = CompatEnv.unique("tls");
        CompatEnv.endpoint();
        CompatEnv.createAll(List.of(topic), List.of(group));
        // Nothing but the endpoint: enableSsl defaults to true.
        ClientConfiguration config = ClientConfiguration.newBuilder().setEndpoints(CompatEnv.endpoint()).build();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        SimpleConsumer consumer = CompatEnv.within(STARTUP, "SimpleConsumer build/start over TLS",
            () -> provider.newSimpleConsumerBuilder().setClientConfiguration(config)
                .setConsumerGroup(group).setAwaitDuration(AWAIT)
                .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                .build());
        Producer producer = null;
        try {
            producer = CompatEnv.within(STARTUP, "Producer build/start over TLS",
                () -> provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build());
            Map<String, Integer> sent = new HashMap<>();
            for (int i = 0; i < 3; i++) {
                final Producer p = producer;
                final int n = i;
                String id = CompatEnv.within(Duration.ofSeconds(30), "send over TLS", () -> p.send(
                    provider.newMessageBuilder().setTopic(topic).setTag("TagTls")
                        .setBody(("tls-" + n).getBytes(StandardCharsets.UTF_8)).build()))
                    .getMessageId().toString();
                sent.put(id, i);
            }
            Map<String, MessageView> got = new HashMap<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (got.size() < sent.size()) {
                if (System.nanoTime() > deadline) {
                    fail("timed out: received " + got.keySet() + " of " + sent.keySet());
                }
                for (MessageView m : CompatEnv.within(AWAIT.plusSeconds(20), "receive over TLS",
                    () -> consumer.receive(16, INVISIBLE))) {
                    String id = m.getMessageId().toString();
                    assertTrue(sent.containsKey(id), "unexpected message " + id);
                    assertFalse(got.containsKey(id), "message " + id + " delivered twice");
                    got.put(id, m);
                }
            }
            for (Map.Entry<String, MessageView> e : got.entrySet()) {
                MessageView m = e.getValue();
                assertEquals("tls-" + sent.get(e.getKey()), StandardCharsets.UTF_8.decode(m.getBody()).toString());
                CompatEnv.withinRun(Duration.ofSeconds(15), "ack over TLS", () -> consumer.ack(m));
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
