"""Fixtures for the official-Python-client compatibility suite.

Server contract (shared with the Node and Java suites, see tests/compat/README.md):

* ``ORBITMQ_ENDPOINT=host:port`` set: use that running server.
* otherwise start ``$ORBITMQ_BIN standalone --listen 127.0.0.1:<free port> --data-dir <temp dir>``
  (``ORBITMQ_BIN`` defaults to ``<repo>/target/debug/orbitmq``), wait up to 30 s for a stdout line
  ``ready on <addr>`` and SIGTERM it at the end of the session.
* ``ORBITMQ_ADMIN``: command prefix that creates topics and groups, default
  ``$ORBITMQ_BIN admin --endpoints <endpoint>``; called as
  ``<prefix> topic create --topic T --read-queues 4 --write-queues 4 --message-type normal`` and
  ``<prefix> group create --group G``; the message-type module also uses ``--message-type fifo|delay|transaction``
  and ``group create --group G [--fifo] [--max-attempts N]``.
* ``ORBITMQ_AUTH_ENDPOINT=host:port``: a server that requires the access key ``ORBITMQ_AUTH_ACCESS_KEY`` and
  secret key ``ORBITMQ_AUTH_SECRET_KEY``; unset, one is started here with ``--access-key``/``--secret-key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 30
ADMIN_TIMEOUT_S = 90

# One random suffix per run, so reruns against a long-lived server never collide.
RUN_ID = secrets.token_hex(4)


def unique(prefix: str) -> str:
    """A topic/group name that is unique to this run (charset ^[%a-zA-Z0-9_-]+$)."""
    return f"py-{prefix}-{RUN_ID}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _orbitmq_bin() -> str:
    return os.environ.get("ORBITMQ_BIN") or str(REPO / "target" / "debug" / "orbitmq")


@pytest.fixture(scope="session")
def endpoint():
    """host:port of the server under test (started here unless ORBITMQ_ENDPOINT is set)."""
    given = os.environ.get("ORBITMQ_ENDPOINT")
    if given:
        yield given
        return
    with _server([]) as addr:
        yield addr


# The credentials of the second server, the one that requires them (test_official_python_credentials.py).
AUTH_ACCESS_KEY = os.environ.get("ORBITMQ_AUTH_ACCESS_KEY", "compat-ak")
AUTH_SECRET_KEY = os.environ.get("ORBITMQ_AUTH_SECRET_KEY", "compat-secret")


@pytest.fixture(scope="session")
def auth_endpoint():
    """host:port of a server started with ``--access-key AUTH_ACCESS_KEY --secret-key AUTH_SECRET_KEY``:
    ``ORBITMQ_AUTH_ENDPOINT`` if set, else started here; skipped when ``ORBITMQ_ENDPOINT`` names another
    server (Apache RocketMQ's credentials are users in its ACL, set up otherwise)."""
    given = os.environ.get("ORBITMQ_AUTH_ENDPOINT")
    if given:
        yield given
        return
    if os.environ.get("ORBITMQ_ENDPOINT"):
        pytest.skip("ORBITMQ_ENDPOINT is set but ORBITMQ_AUTH_ENDPOINT is not")
    with _server(["--access-key", AUTH_ACCESS_KEY, "--secret-key", AUTH_SECRET_KEY]) as addr:
        yield addr


@contextlib.contextmanager
def _server(extra: list[str]):
    """Starts ``$ORBITMQ_BIN standalone`` with ``extra`` flags on a free port; yields its address once it is
    ready and SIGTERMs it at the end."""
    binary = _orbitmq_bin()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"ORBITMQ_ENDPOINT is unset and the server binary {binary} does not exist "
                    f"(build it, or set ORBITMQ_BIN / ORBITMQ_ENDPOINT)", pytrace=False)
    data_dir = tempfile.mkdtemp(prefix="orbitmq-compat-py-")
    log_path = Path(data_dir) / "server.log"
    listen = f"127.0.0.1:{_free_port()}"
    log = open(log_path, "wb")
    # Metrics on a free port: the default 127.0.0.1:5557 may be taken by a server already running.
    proc = subprocess.Popen([binary, "standalone", "--listen", listen, "--data-dir", str(Path(data_dir) / "data"),
                             "--metrics-listen", "127.0.0.1:0", "--dashboard-listen", "off", *extra],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        addr = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            m = re.search(r"ready on (\S+)", log_path.read_text(errors="replace"))
            if m:
                addr = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if addr is None:
            pytest.fail(f"server did not print 'ready on <addr>' within {READY_TIMEOUT_S} s "
                        f"(exit code {proc.poll()}); log:\n{log_path.read_text(errors='replace')[-4000:]}",
                        pytrace=False)
        yield addr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


class Admin:
    """Creates topics and groups through the ORBITMQ_ADMIN command prefix."""

    def __init__(self, endpoint: str):
        prefix = os.environ.get("ORBITMQ_ADMIN")
        self.prefix = shlex.split(prefix) if prefix else [_orbitmq_bin(), "admin", "--endpoints", endpoint]

    def _run(self, args: list[str]) -> None:
        cmd = self.prefix + args
        try:
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=ADMIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"admin command timed out after {ADMIN_TIMEOUT_S} s: {shlex.join(cmd)}")
        if res.returncode != 0:
            raise AssertionError(f"admin command failed (exit {res.returncode}): {shlex.join(cmd)}\n"
                                 f"stdout: {res.stdout.decode(errors='replace')}\n"
                                 f"stderr: {res.stderr.decode(errors='replace')}")

    def create_topic(self, topic: str, message_type: str = "normal", queues: int = 4) -> None:
        """``message_type``: normal, fifo, delay or transaction."""
        self._run(["topic", "create", "--topic", topic, "--read-queues", str(queues), "--write-queues", str(queues),
                   "--message-type", message_type])

    def create_group(self, group: str, fifo: bool = False, max_attempts: int | None = None) -> None:
        args = ["group", "create", "--group", group]
        if fifo:
            args.append("--fifo")
        if max_attempts is not None:
            args += ["--max-attempts", str(max_attempts)]
        self._run(args)


# Every topic and group the suite uses, created once, concurrently, before the first test
# (each admin call may start a JVM when run against Apache RocketMQ, so this saves time).
TOPICS = {key: unique(key) for key in ("send", "simple", "redeliver", "cid", "cid-final", "tags")}
GROUPS = {key: unique(key) for key in ("simple", "redeliver", "cid", "cid-final", "tag-a", "tag-ab")}


@pytest.fixture(scope="session")
def resources(endpoint):
    admin = Admin(endpoint)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(admin.create_topic, t) for t in TOPICS.values()]
        futures += [pool.submit(admin.create_group, g) for g in GROUPS.values()]
        for f in futures:
            f.result()
    return {"topics": TOPICS, "groups": GROUPS}


# The message-type module (test_official_python_message_types.py) uses its own topics and groups, created only
# when one of its tests is selected (in the background, from the start of the session):
# key -> (name, message type) and key -> (name, fifo, max attempts).
# Namespaced resources are stored by the server as "<namespace>%<name>" (Apache's NamespaceUtil), so they
# are created under that full name.
NAMESPACES = {key: unique(key) for key in ("ns-a", "ns-b")}
NS_TOPIC = unique("ns-topic")
NS_GROUP = unique("ns-group")
TYPED_TOPICS = {
    "fifo-order": (unique("fifo-order"), "fifo"),
    "fifo-excl": (unique("fifo-excl"), "fifo"),
    "delay": (unique("delay"), "delay"),
    "recall": (unique("recall"), "delay"),
    "tx": (unique("tx"), "transaction"),
    "tx-orphan": (unique("tx-orphan"), "transaction"),
    "dlq": (unique("dlq"), "normal"),
    **{f"ns-{ns}": (f"{NAMESPACES[ns]}%{NS_TOPIC}", "normal") for ns in NAMESPACES},
}
TYPED_GROUPS = {
    "fifo-order": (unique("fifo-order"), True, None),
    "fifo-excl": (unique("fifo-excl"), True, None),
    "delay": (unique("delay"), False, None),
    "recall": (unique("recall"), False, None),
    "tx": (unique("tx"), False, None),
    "tx-orphan": (unique("tx-orphan"), False, None),
    "dlq": (unique("dlq"), False, 2),
    "dlq-reader": (unique("dlq-reader"), False, None),
    **{f"ns-{ns}": (f"{NAMESPACES[ns]}%{NS_GROUP}", False, None) for ns in NAMESPACES},
}


def _create_typed_resources(endpoint: str) -> dict:
    admin = Admin(endpoint)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(admin.create_topic, name, mtype) for name, mtype in TYPED_TOPICS.values()]
        futures += [pool.submit(admin.create_group, name, fifo, attempts)
                    for name, fifo, attempts in TYPED_GROUPS.values()]
        for f in futures:
            f.result()
    return {"topics": {k: v[0] for k, v in TYPED_TOPICS.items()},
            "groups": {k: v[0] for k, v in TYPED_GROUPS.items()}}


_typed_creation: Future | None = None


def _start_typed_creation(endpoint: str) -> Future:
    """Starts creating TYPED_TOPICS/TYPED_GROUPS on a daemon thread (once per session)."""
    global _typed_creation
    if _typed_creation is None:
        fut: Future = Future()

        def run():
            try:
                fut.set_result(_create_typed_resources(endpoint))
            except BaseException as e:  # noqa: BLE001 - re-raised by typed_resources
                fut.set_exception(e)

        threading.Thread(target=run, daemon=True, name="create-typed-resources").start()
        _typed_creation = fut
    return _typed_creation


@pytest.fixture(scope="session", autouse=True)
def _typed_resources_early(request, endpoint):
    """When a selected test needs the typed resources, start creating them at the very beginning of the
    session, in the background: against Apache every admin call starts a JVM, and this overlaps them with the
    tests that run first."""
    if any("typed_resources" in item.fixturenames for item in request.session.items):
        _start_typed_creation(endpoint)


@pytest.fixture(scope="session")
def typed_resources(endpoint):
    """TYPED_TOPICS and TYPED_GROUPS, created (concurrently) before the first test that needs them."""
    return _start_typed_creation(endpoint).result(timeout=4 * ADMIN_TIMEOUT_S)


def make_client_config(endpoint: str, namespace: str = ""):
    from rocketmq import ClientConfiguration, Credentials
    return ClientConfiguration(endpoint, Credentials(), namespace=namespace, request_timeout=5)


@pytest.fixture(scope="session")
def client_config(endpoint):
    from rocketmq import ClientConfiguration, Credentials
    return ClientConfiguration(endpoint, Credentials(), request_timeout=5)


def run_with_timeout(fn, timeout_s: float, what: str):
    """Run a blocking client call in a thread; fail instead of hanging forever."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            result["error"] = e

    t = threading.Thread(target=target, daemon=True, name=f"call-{what}")
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise AssertionError(f"{what} did not return within {timeout_s} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


SETTINGS_TIMEOUT_S = 10


def wait_settings(client, what):
    """The server must answer the client's Telemetry Settings with status OK (the Python client
    ignores a settings reply without it); the client sets this event when it gets a valid reply."""
    event = client._init_settings_event  # noqa: SLF001 - the client exposes no public hook
    assert event.wait(SETTINGS_TIMEOUT_S), (
        f"{what}: no Telemetry settings reply with status OK within {SETTINGS_TIMEOUT_S} s "
        f"(or no route at all: see the client errors logged above)")


def start(client, what, settings: bool = True):
    """Starts a client (bounded) and waits for its settings reply.

    The official client opens its Telemetry stream inside ``startup()``, from the calling thread,
    and grpc.aio looks that thread's event loop up when it creates the call. In a helper thread
    there is none, so the stream fails ("There is no current event loop in thread ...") whenever
    the client's own io-loop thread has not created it first: a race that lost once in CI under
    load, leaving the client without settings. The client's channels all live on its class-level
    io loop, so the helper thread gets that loop as its current one, as the io-loop thread has."""
    from rocketmq.v5.client.connection.rpc_client import RpcClient

    def startup():
        loop = RpcClient.get_channel_io_loop()
        if loop is not None:
            asyncio.set_event_loop(loop)
        client.startup()

    run_with_timeout(startup, 30, f"{what}.startup()")
    if settings:
        wait_settings(client, what)
    return client
