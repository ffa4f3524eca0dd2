// Transaction messages with Apache's official RocketMQ Java client (org.apache.rocketmq:rocketmq-client-java:5.2.0).
//
// A transaction message ties a message to a local transaction (here: capturing an order's payment in the
// application's database). The producer sends a "half" message, which consumers cannot see, runs its local
// transaction, then commits (the message is delivered) or rolls back (it is discarded). If the producer never says
// which (it crashed, timed out, ...), the broker asks it back: the producer's TransactionChecker looks the order up
// in the database and answers. OrbitMQ asks about 6 s after the send, then every 30 s.
//
// Here: order 1 is paid and committed, order 2's payment is declined and rolled back, order 3 is paid but the
// producer "forgets" to commit, so the broker checks back and the checker commits.
//
// Run (in examples/official/java): mvn -q dependency:build-classpath -Dmdep.outputFile=cp.txt &&
//   java -cp "$(cat cp.txt)" Transaction.java        (ORBITMQ_ENDPOINT=host:port, default 127.0.0.1:8081)
// Exits 0 only if the consumer got exactly orders 1 and 3, once each, order 3 only after the check-back, and the
// checker was asked about order 3 alone.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

public class Transaction {
    // The application's own records: order id -> "paid" or "declined".
    static final Map<String, String> database = new ConcurrentHashMap<>();
    // This run's orders the broker asked about -> when (System.nanoTime()).
    static final Map<String, Long> checked = new ConcurrentHashMap<>();

    public static void main(String[] args) throws Exception {
        String endpoint = System.getenv().getOrDefault("ORBITMQ_ENDPOINT", "127.0.0.1:8081");
        String topic = "tx-payments"; // auto-created by the server (as MIXED: it accepts transaction messages)
        String run = UUID.randomUUID().toString().substring(0, 8); // tells this run's messages from older ones
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        // TLS by default, accepting the server's self-signed certificate
        ClientConfiguration config = ClientConfiguration.newBuilder().setEndpoints(endpoint).build();

        SimpleConsumer consumer = provider.newSimpleConsumerBuilder().setClientConfiguration(config)
            .setConsumerGroup("tx-payments-group").setAwaitDuration(Duration.ofSeconds(5))
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression("paid"))).build();
        // The checker (required for transactions) runs on a client thread when the broker asks about a half
        // message nobody committed or rolled back. An order of an earlier run is unknown here: roll it back.
        Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic)
            .setTransactionChecker(message -> {
                String order = message.getKeys().stream().findFirst().orElse("?");
                String state = database.get(order);
                TransactionResolution answer = "paid".equals(state)
                    ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
                System.out.println("broker checks back " + order + ": local state " + state + ", answering " + answer);
                if (state != null) {
                    checked.putIfAbsent(order, System.nanoTime());
                }
                return answer;
            }).build();

        String committed = pay(provider, producer, topic, "order-1-" + run, 30, true, true);
        String rolledBack = pay(provider, producer, topic, "order-2-" + run, 45, false, true);
        String openOrder = "order-3-" + run;
        String leftOpen = pay(provider, producer, topic, openOrder, 12, true, false);
        long sentAt = System.nanoTime();

        // Receive until orders 1 and 3 arrived (40 s at most: the check-back comes ~6 s after the send).
        List<String> received = new ArrayList<>();
        boolean early = false;
        long deadline = sentAt + Duration.ofSeconds(40).toNanos();
        while (!(received.contains(committed) && received.contains(leftOpen)) && System.nanoTime() < deadline) {
            // at most 16 messages, invisible to the group for 15 s
            for (MessageView message : consumer.receive(16, Duration.ofSeconds(15))) {
                String id = message.getMessageId().toString();
                if (id.equals(committed) || id.equals(rolledBack) || id.equals(leftOpen)) {
                    System.out.printf("received '%s' %.1f s after the last send%n",
                        StandardCharsets.UTF_8.decode(message.getBody()), (System.nanoTime() - sentAt) / 1e9);
                    received.add(id);
                    if (id.equals(leftOpen) && !checked.containsKey(openOrder)) {
                        early = true;
                        System.out.println("  ... but the broker has not checked it back yet");
                    }
                }
                consumer.ack(message); // leftovers of earlier runs are acked too
            }
        }
        producer.close();
        consumer.close();

        if (checked.containsKey(openOrder)) {
            System.out.printf("the broker checked %s back %.1f s after it was sent%n", openOrder,
                (checked.get(openOrder) - sentAt) / 1e9);
        }
        boolean ok = received.size() == 2 && received.contains(committed) && received.contains(leftOpen) && !early
            && checked.keySet().equals(Set.of(openOrder));
        System.out.printf("transaction: received committed %dx, rolled back %dx, left open %dx%s; "
                + "checker asked about %s%n",
            count(received, committed), count(received, rolledBack), count(received, leftOpen),
            early ? " (before the check-back)" : "",
            checked.isEmpty() ? "none of them" : String.join(", ", new TreeSet<>(checked.keySet())));
        System.exit(ok ? 0 : 1);
    }

    // One order: half message, local transaction, then commit or rollback (unless finish is false).
    static String pay(ClientServiceProvider provider, Producer producer, String topic, String order, int amount,
                      boolean cardOk, boolean finish) throws Exception {
        // (the client's Transaction type, spelled out: this class is called Transaction too)
        org.apache.rocketmq.client.apis.producer.Transaction transaction = producer.beginTransaction();
        var receipt = producer.send(provider.newMessageBuilder().setTopic(topic).setTag("paid").setKeys(order)
            .setBody((order + " paid " + amount + " EUR").getBytes(StandardCharsets.UTF_8)).build(), transaction);
        database.put(order, cardOk ? "paid" : "declined"); // the local transaction
        String id = receipt.getMessageId().toString();
        if (!finish) {
            System.out.println("sent " + order + " (message id " + id + "), local state " + database.get(order)
                + ", left open");
        } else if (cardOk) {
            transaction.commit();
            System.out.println("sent " + order + " (message id " + id + "), local state paid, committed");
        } else {
            transaction.rollback();
            System.out.println("sent " + order + " (message id " + id + "), local state declined, rolled back");
        }
        return id;
    }

    static long count(List<String> received, String id) {
        return received.stream().filter(id::equals).count();
    }
}
