"""What the examples share: the server ($ORBITMQ_ENDPOINT, else orbitmq standalone's default)
and a run id telling this run's messages from older ones."""

import os
import time

ENDPOINT = os.environ.get("ORBITMQ_ENDPOINT", "127.0.0.1:8081")
RUN = f"{os.getpid():x}{time.time_ns() % 1_000_000:x}"
