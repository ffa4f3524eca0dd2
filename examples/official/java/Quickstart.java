// OrbitMQ quickstart with Apache's official RocketMQ Java client (org.apache.rocketmq:rocketmq-client-java:5.2.0).
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;

public class Quickstart {
    public static void main(String[] args) throws Exception {
        String endpoint = System.getenv().getOrDefault("ORBITMQ_ENDPOINT", "127.0.0.1:8081");
        String topic = "quickstart";
        String run = UUID.randomUUID().toString().substring(0, 8); // tells this run's messages from older ones
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        // TLS by default, accepting the server's self-signed certificate
        ClientConfiguration config = ClientConfiguration.newBuilder().setEndpoints(endpoint).build();

        Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build();
        Set<String> sent = new HashSet<>();
        for (int i = 0; i < 3; i++) {
            String body = "order " + i + " created (" + run + ")";
            var receipt = producer.send(provider.newMessageBuilder().setTopic(topic).setTag("created")
                .setKeys("order-" + i).setBody(body.getBytes(StandardCharsets.UTF_8)).build());
            System.out.println("sent " + receipt.getMessageId());
            sent.add(body);
        }

        SimpleConsumer consumer = provider.newSimpleConsumerBuilder().setClientConfiguration(config)
            .setConsumerGroup("quickstart-group").setAwaitDuration(Duration.ofSeconds(5))
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression("created"))).build();
        Set<String> received = new HashSet<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (received.size() < sent.size() && System.nanoTime() < deadline) {
            // at most 16 messages, invisible to the group for 15 s
            for (MessageView message : consumer.receive(16, Duration.ofSeconds(15))) {
                String body = StandardCharsets.UTF_8.decode(message.getBody()).toString();
                if (sent.contains(body) && received.add(body)) {
                    System.out.println("received " + body);
                }
                consumer.ack(message); // leftovers of earlier runs are acked too
            }
        }
        consumer.close();
        producer.close();
        System.out.println("quickstart: sent " + sent.size() + ", received " + received.size());
        System.exit(received.size() == sent.size() ? 0 : 1);
    }
}
