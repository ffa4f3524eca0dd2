"""The official Python client (rocketmq-python-client 5.1.2) against a server that requires an access key and
secret key (``orbitmq standalone --access-key AK --secret-key SK``).

With the right keys it produces and consumes. With a wrong secret, an unknown access key or no keys (the client
then signs with empty keys), every call is answered with the in-body status UNAUTHORIZED (40100), as Apache
RocketMQ's proxy answers it. The client turns that status into ``UnauthorizedException`` ("40100, <cause>"), but
its route manager catches it and logs ``query topic raise exception, 40100, <cause>``, so what the application
gets from ``send``/``receive`` is the client's generic ``Exception("failed to fetch topic:<t> route.")``: the
same as against Apache's proxy. Both are checked.
"""

from __future__ import annotations

import logging
import time

import pytest
from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

from conftest import AUTH_ACCESS_KEY, AUTH_SECRET_KEY, run_with_timeout, start, unique

UNAUTHORIZED = 40100


def _config(endpoint: str, ak: str, sk: str) -> ClientConfiguration:
    return ClientConfiguration(endpoint, Credentials(ak, sk), request_timeout=5)


def _message(topic: str, body: bytes) -> Message:
    msg = Message()
    msg.topic = topic
    msg.body = body
    return msg


def test_the_right_keys_produce_and_consume(auth_endpoint):
    topic, group = unique("auth-ok"), unique("auth-ok-g")
    config = _config(auth_endpoint, AUTH_ACCESS_KEY, AUTH_SECRET_KEY)
    producer = start(Producer(config, (topic,)), "Producer")
    consumer = None
    try:
        receipt = run_with_timeout(lambda: producer.send(_message(topic, b"signed")), 30, "send")
        consumer = start(SimpleConsumer(config, group, {topic: FilterExpression("*")}, await_duration=5),
                         "SimpleConsumer")
        got = []
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "the signed message was not received within 30 s"
            got = run_with_timeout(lambda: consumer.receive(16, 10), 30, "receive")
        assert [m.message_id for m in got] == [receipt.message_id]
        assert got[0].body == b"signed"
        run_with_timeout(lambda: consumer.ack(got[0]), 30, "ack")
    finally:
        run_with_timeout(producer.shutdown, 30, "producer.shutdown()")
        if consumer is not None:
            run_with_timeout(consumer.shutdown, 30, "consumer.shutdown()")


BAD_KEYS = [
    pytest.param(AUTH_ACCESS_KEY, "not-the-secret", "signature does not match (wrong secret key?)",
                 id="wrong-secret"),
    pytest.param("intruder", AUTH_SECRET_KEY, 'unknown access key "intruder"', id="unknown-access-key"),
    # Credentials() with no keys: the client still sends an authorization header, with an empty access key.
    pytest.param("", "", "empty access key in the authorization header", id="no-keys"),
]


def _assert_unauthorized_logged(caplog, cause):
    """The client logged the server's UNAUTHORIZED status as its UnauthorizedException: "40100, <cause>"."""
    logged = [r.getMessage() for r in caplog.records if r.name == "rocketmq-python-client"]
    wanted = f"query topic raise exception, {UNAUTHORIZED}, "
    assert any(wanted in m and cause in m for m in logged), f"no {wanted!r}...{cause!r} in {logged}"
    assert not any(AUTH_SECRET_KEY in m for m in logged), "the secret was logged"


@pytest.mark.parametrize("ak,sk,cause", BAD_KEYS)
def test_bad_keys_get_unauthorized_from_producer(auth_endpoint, caplog, ak, sk, cause):
    caplog.set_level(logging.ERROR, logger="rocketmq-python-client")
    topic = unique("auth-bad")
    # startup() only logs the refused route query; the refused Telemetry stream brings no settings.
    producer = start(Producer(_config(auth_endpoint, ak, sk), (topic,)), "Producer", settings=False)
    try:
        with pytest.raises(Exception, match="failed to fetch topic"):
            run_with_timeout(lambda: producer.send(_message(topic, b"refused")), 30, "send")
        _assert_unauthorized_logged(caplog, cause)
    finally:
        run_with_timeout(producer.shutdown, 30, "producer.shutdown()")


@pytest.mark.parametrize("ak,sk,cause", BAD_KEYS)
def test_bad_keys_get_unauthorized_from_simple_consumer(auth_endpoint, caplog, ak, sk, cause):
    caplog.set_level(logging.ERROR, logger="rocketmq-python-client")
    topic, group = unique("auth-bad-c"), unique("auth-bad-g")
    consumer = start(SimpleConsumer(_config(auth_endpoint, ak, sk), group, {topic: FilterExpression("*")},
                                    await_duration=5), "SimpleConsumer", settings=False)
    try:
        with pytest.raises(Exception, match="failed to fetch topic"):
            run_with_timeout(lambda: consumer.receive(16, 10), 30, "receive")
        _assert_unauthorized_logged(caplog, cause)
    finally:
        run_with_timeout(consumer.shutdown, 30, "consumer.shutdown()")
