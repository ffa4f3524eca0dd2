package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(Report.class)
class ProducerTest {
    static final Duration STARTUP = Duration.ofSeconds(40);

    @Test
    void sendReturnsReceiptWithMessageId() throws Exception {
        CompatEnv.ensureResources();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.TOPIC_SEND;
        Producer producer = CompatEnv.within(STARTUP, "Producer build/start", () -> provider.newProducerBuilder()
            .setClientConfiguration(CompatEnv.clientConfiguration()).setTopics(topic).build());
        try {
            Set<String> ids = new HashSet<>();
            for (int i = 0; i < 5; i++) {
                Message msg = provider.newMessageBuilder().setTopic(topic).setTag("TagA").setKeys("key-" + i)
                    .addProperty("n", String.valueOf(i)).setBody(("send-" + i).getBytes(StandardCharsets.UTF_8))
                    .build();
                SendReceipt receipt = CompatEnv.within(Duration.ofSeconds(30), "send", () -> producer.send(msg));
                assertNotNull(receipt, "send returned no receipt");
                assertNotNull(receipt.getMessageId(), "receipt without message id");
                String id = receipt.getMessageId().toString();
                assertTrue(id.matches("[0-9A-F]{34}"), "unexpected message id " + id);
                ids.add(id);
            }
            assertEquals(5, ids.size(), "message ids are not unique: " + ids);
            CompatEnv.close(producer);
        } catch (Throwable t) {
            CompatEnv.closeQuietly(producer);
            throw t;
        }
    }
}
