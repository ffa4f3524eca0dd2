"""Fixtures: a real ``orbitmq standalone`` on a free port (as tests/compat/python/conftest.py
starts it), an ``Admin`` on it, and fresh topic and group names per test.

``ORBITMQ_BIN``: the server binary (default ``<repo>/target/ci/orbitmq``).
``ORBITMQ_ENDPOINT``: use that running server instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import orbitmq
import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30
RUN_ID = secrets.token_hex(3)
_counter = iter(range(1_000_000))


def unique(prefix: str) -> str:
    """A topic or group name unique to this run."""
    return f"py-{prefix}-{RUN_ID}-{next(_counter)}"


def _orbitmq_bin() -> str:
    return os.environ.get("ORBITMQ_BIN") or str(REPO / "target" / "ci" / "orbitmq")


@contextlib.contextmanager
def serve(*extra: str) -> Iterator[str]:
    """An orbitmq standalone on a free port, its data in a temporary directory: its address."""
    binary = _orbitmq_bin()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"the server binary {binary} does not exist (set ORBITMQ_BIN)", pytrace=False)
    data_dir = tempfile.mkdtemp(prefix="orbitmq-py-")
    log_path = Path(data_dir) / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            binary,
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--dashboard-listen",
            "off",
            "--data-dir",
            str(Path(data_dir) / "data"),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        addr = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"ready on (\S+)", log_path.read_text(errors="replace"))
            if m:
                addr = m.group(1)
                break
            time.sleep(0.05)
        if addr is None:
            pytest.fail(
                f"the server did not print 'ready on <addr>' (exit {proc.poll()}):\n"
                f"{log_path.read_text(errors='replace')[-4000:]}",
                pytrace=False,
            )
        yield addr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def endpoint() -> Iterator[str]:
    """The server the tests use. Topics and groups are not created on first use: the tests
    create what they use (and can see NOT_FOUND)."""
    given = os.environ.get("ORBITMQ_ENDPOINT")
    if given:
        yield given
        return
    with serve("--auto-create-topics", "false") as addr:
        yield addr


@pytest.fixture(scope="session")
def admin(endpoint: str) -> Iterator[orbitmq.Admin]:
    with orbitmq.Admin(endpoints=endpoint) as a:
        yield a


@pytest.fixture
def make_topic(admin: orbitmq.Admin) -> Callable[..., str]:
    """Creates a fresh topic: ``make_topic("fifo", message_type="FIFO", queues=2)``."""

    def make(prefix: str = "t", message_type: str = "NORMAL", queues: int = 4) -> str:
        name = unique(prefix)
        admin.create_topic(name, read_queues=queues, write_queues=queues, message_type=message_type)
        return name

    return make


@pytest.fixture
def make_group(admin: orbitmq.Admin) -> Callable[..., str]:
    """Creates a fresh consumer group: ``make_group("g", fifo=True, max_delivery_attempts=3)``."""

    def make(prefix: str = "g", **options: object) -> str:
        name = unique(prefix)
        admin.create_group(name, **options)  # type: ignore[arg-type]
        return name

    return make


def orbitmq_threads() -> list[str]:
    """Names of this process's threads the package started (its runtime's)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("orbitmq"):
            names.append(name)
    return names


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def receive_all(consumer: orbitmq.SimpleConsumer, want: int, timeout: float = 15.0) -> list[orbitmq.MessageView]:
    """Receives (and acks) until `want` messages came or `timeout` passed."""
    got: list[orbitmq.MessageView] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for m in consumer.receive(max_messages=32, invisible_duration=15):
            consumer.ack(m)
            got.append(m)
    return got
