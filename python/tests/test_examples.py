"""examples/python run as they are, against a server that creates topics on first use (as
`orbitmq standalone` does by default)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, serve

EXAMPLES = [
    "quickstart",
    "simple_consumer",
    "pull_consumer",
    "broadcasting",
    "fifo",
    "delay",
    "transaction",
    "asyncio_quickstart",
]


@pytest.fixture(scope="module")
def auto_create_endpoint():  # type: ignore[no-untyped-def]
    with serve() as addr:
        yield addr


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name: str, auto_create_endpoint: str) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / f"{name}.py")],
        env={**os.environ, "ORBITMQ_ENDPOINT": auto_create_endpoint},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
