"""OrbitMQ for Python: RocketMQ 5 producers and consumers backed by the Rust SDK.

Blocking methods release the GIL; each has an ``_async`` twin returning an awaitable. Every
client is a context manager (``with`` and ``async with``) and has ``close()``. Durations are
seconds (float), timestamps milliseconds since the epoch. Errors are ``OrbitMQError``
subclasses (``orbitmq.exceptions``); the SDK logs on the ``orbitmq`` logger.
"""

from __future__ import annotations

import atexit
import os

from ._orbitmq import (
    Admin,
    ClientConfig,
    ConsumeResult,
    ConsumerModel,
    FilterExpression,
    Message,
    MessageQueue,
    MessageView,
    Producer,
    PullConsumer,
    PushConsumer,
    SendReceipt,
    SimpleConsumer,
    Transaction,
    TransactionResolution,
    __version__,
    after_fork_in_child,
    shutdown_all,
)
from .exceptions import (
    BadRequestError,
    ClosedError,
    ForbiddenError,
    InternalError,
    NotFoundError,
    OrbitMQError,
    PayloadTooLargeError,
    PreconditionFailedError,
    ReplicationTimeoutError,
    TimeoutError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
    UnsupportedError,
)

# Closes the clients still open and stops the package's runtime before the interpreter
# finalises: its threads never touch a finalising interpreter.
atexit.register(shutdown_all)
# A child of fork() has none of the runtime's threads: it starts its own (the parent's clients
# raise ClosedError there).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)

__all__ = [
    "Admin",
    "BadRequestError",
    "ClientConfig",
    "ClosedError",
    "ConsumeResult",
    "ConsumerModel",
    "FilterExpression",
    "ForbiddenError",
    "InternalError",
    "Message",
    "MessageQueue",
    "MessageView",
    "NotFoundError",
    "OrbitMQError",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "Producer",
    "PullConsumer",
    "PushConsumer",
    "ReplicationTimeoutError",
    "SendReceipt",
    "SimpleConsumer",
    "TimeoutError",
    "TooManyRequestsError",
    "Transaction",
    "TransactionResolution",
    "UnauthorizedError",
    "UnavailableError",
    "UnsupportedError",
    "__version__",
    "shutdown_all",
]
