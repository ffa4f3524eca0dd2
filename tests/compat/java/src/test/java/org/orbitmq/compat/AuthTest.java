package org.orbitmq.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.StaticSessionCredentialsProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.java.exception.UnauthorizedException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The official Java client against a server started with {@code --access-key}/{@code --secret-key}: the right
 * keys produce and consume; a wrong secret, an unknown access key or no credentials make the client fail with its
 * {@link UnauthorizedException} (response code 40100, the server's in-body UNAUTHORIZED) naming the cause.
 */
@ExtendWith(Report.class)
class AuthTest {
    static final Duration STARTUP = Duration.ofSeconds(40);
    static final Duration CALL = Duration.ofSeconds(30);

    private static String server() throws Exception {
        String endpoint = CompatEnv.authEndpoint();
        Assumptions.assumeTrue(endpoint != null, "ORBITMQ_ENDPOINT is set but ORBITMQ_AUTH_ENDPOINT is not");
        return endpoint;
    }

    /** {@code ak == null}: no credentials at all (the Java client then sends no authorization header). */
    private static ClientConfiguration config(String endpoint, String ak, String sk) {
        var b = ClientConfiguration.newBuilder().setEndpoints(endpoint).enableSsl(false)
            .setRequestTimeout(Duration.ofSeconds(5));
        if (ak != null) {
            b.setCredentialProvider(new StaticSessionCredentialsProvider(ak, sk));
        }
        return b.build();
    }

    @Test
    void theRightKeysProduceAndConsume() throws Exception {
        String endpoint = server();
        ClientConfiguration cfg = config(endpoint, CompatEnv.AUTH_ACCESS_KEY, CompatEnv.AUTH_SECRET_KEY);
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.unique("auth-ok");
        String group = CompatEnv.unique("auth-ok-g");
        Producer producer = CompatEnv.within(STARTUP, "Producer build/start",
            () -> provider.newProducerBuilder().setClientConfiguration(cfg).setTopics(topic).build());
        SimpleConsumer consumer = null;
        try {
            Message msg = provider.newMessageBuilder().setTopic(topic)
                .setBody("signed".getBytes(StandardCharsets.UTF_8)).build();
            SendReceipt receipt = CompatEnv.within(CALL, "send", () -> producer.send(msg));
            assertNotNull(receipt.getMessageId());
            consumer = CompatEnv.within(STARTUP, "SimpleConsumer build/start", () -> provider
                .newSimpleConsumerBuilder().setClientConfiguration(cfg).setConsumerGroup(group)
                .setSubscriptionExpressions(Collections.singletonMap(topic, FilterExpression.SUB_ALL))
                .setAwaitDuration(Duration.ofSeconds(5)).build());
            SimpleConsumer c = consumer;
            List<MessageView> got = Collections.emptyList();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (got.isEmpty()) {
                assertTrue(System.nanoTime() < deadline, "the signed message was not received within 30 s");
                got = CompatEnv.within(CALL, "receive", () -> c.receive(16, Duration.ofSeconds(10)));
            }
            assertEquals(1, got.size(), "received " + got);
            assertEquals(receipt.getMessageId(), got.get(0).getMessageId());
            assertEquals("signed", StandardCharsets.UTF_8.decode(got.get(0).getBody()).toString());
            MessageView view = got.get(0);
            CompatEnv.withinRun(CALL, "ack", () -> c.ack(view));
            CompatEnv.close(producer);
            CompatEnv.close(consumer);
        } catch (Throwable t) {
            CompatEnv.closeQuietly(producer);
            CompatEnv.closeQuietly(consumer);
            throw t;
        }
    }

    @Test
    void aWrongSecretIsUnauthorized() throws Exception {
        refused(CompatEnv.AUTH_ACCESS_KEY, "not-the-secret", "signature does not match (wrong secret key?)");
    }

    @Test
    void anUnknownAccessKeyIsUnauthorized() throws Exception {
        refused("intruder", CompatEnv.AUTH_SECRET_KEY, "unknown access key \"intruder\"");
    }

    @Test
    void noCredentialsAreUnauthorized() throws Exception {
        refused(null, null, "no authorization header");
    }

    /** Producer and simple consumer start-ups with these keys fail with UnauthorizedException naming {@code cause}. */
    private static void refused(String ak, String sk, String cause) throws Exception {
        String endpoint = server();
        ClientConfiguration cfg = config(endpoint, ak, sk);
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        String topic = CompatEnv.unique("auth-bad");
        Throwable producerError = failure(() -> provider.newProducerBuilder().setClientConfiguration(cfg)
            .setTopics(topic).build());
        assertUnauthorized(producerError, cause);
        Throwable consumerError = failure(() -> provider.newSimpleConsumerBuilder().setClientConfiguration(cfg)
            .setConsumerGroup(CompatEnv.unique("auth-bad-g"))
            .setSubscriptionExpressions(Collections.singletonMap(topic, FilterExpression.SUB_ALL))
            .setAwaitDuration(Duration.ofSeconds(5)).build());
        assertUnauthorized(consumerError, cause);
    }

    /** Builds (starts) a client that must fail, and returns the failure. */
    private static Throwable failure(java.util.concurrent.Callable<AutoCloseable> build) throws Exception {
        AutoCloseable client;
        try {
            client = CompatEnv.within(STARTUP, "client build/start", build);
        } catch (Exception e) {
            return e;
        }
        CompatEnv.closeQuietly(client);
        return fail("the client started without valid credentials");
    }

    private static void assertUnauthorized(Throwable t, String cause) {
        Throwable cur = t;
        while (cur != null && !(cur instanceof UnauthorizedException)) {
            cur = cur.getCause();
        }
        if (cur == null) {
            throw new AssertionError("no UnauthorizedException in the cause chain", t);
        }
        String message = cur.getMessage();
        assertTrue(message.contains("response-code=40100"), message);
        assertTrue(message.contains(cause), "\"" + message + "\" does not name the cause \"" + cause + "\"");
        assertFalse(message.contains(CompatEnv.AUTH_SECRET_KEY), message);
    }
}
