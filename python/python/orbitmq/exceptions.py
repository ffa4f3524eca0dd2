"""OrbitMQ's exceptions: ``OrbitMQError`` and one subclass per error kind of the SDK.

Each carries ``.kind`` (the kind's stable name, ``"NOT_FOUND"``...), ``.code`` (the RocketMQ
status code the server answered, such as ``40402`` for TOPIC_NOT_FOUND, or ``None``),
``.operation`` (``"send"``, ``"receive"``...) and ``.endpoint`` (where the request went).
"""

from __future__ import annotations

import builtins

__all__ = [
    "OrbitMQError",
    "BadRequestError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "TooManyRequestsError",
    "TimeoutError",
    "UnavailableError",
    "UnsupportedError",
    "InternalError",
    "ClosedError",
    "PreconditionFailedError",
    "ReplicationTimeoutError",
]


class OrbitMQError(Exception):
    """A failed OrbitMQ operation."""

    kind: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        code: int | None = None,
        operation: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.operation = operation
        self.endpoint = endpoint


class BadRequestError(OrbitMQError, ValueError):
    """The request or a value in it is invalid: fix the input, retrying will not help."""

    kind = "BAD_REQUEST"


class UnauthorizedError(OrbitMQError):
    """Credentials are missing or wrong."""

    kind = "UNAUTHORIZED"


class ForbiddenError(OrbitMQError):
    """The credentials may not do this (or the topic is not writable/readable)."""

    kind = "FORBIDDEN"


class NotFoundError(OrbitMQError, LookupError):
    """A topic, group, message or offset that does not exist."""

    kind = "NOT_FOUND"


class PayloadTooLargeError(OrbitMQError, ValueError):
    """A body or properties over the server's limit."""

    kind = "PAYLOAD_TOO_LARGE"


class TooManyRequestsError(OrbitMQError):
    """The server is throttling: retry later (the SDK already retried with back-off)."""

    kind = "TOO_MANY_REQUESTS"


class TimeoutError(OrbitMQError, builtins.TimeoutError):
    """No answer within the request timeout, or the server timed out inside."""

    kind = "TIMEOUT"


class UnavailableError(OrbitMQError, ConnectionError):
    """The server could not be reached, or the connection broke."""

    kind = "UNAVAILABLE"


class UnsupportedError(OrbitMQError):
    """The server does not support this."""

    kind = "UNSUPPORTED"


class InternalError(OrbitMQError):
    """The server (or the client) failed internally."""

    kind = "INTERNAL"


class ClosedError(OrbitMQError):
    """The client was closed (or the interpreter is exiting)."""

    kind = "CLOSED"


class PreconditionFailedError(OrbitMQError):
    """Valid, but the state does not allow it (an expired receipt handle, an ended transaction)."""

    kind = "PRECONDITION_FAILED"


class ReplicationTimeoutError(OrbitMQError):
    """Stored on the master, but not replicated as asked in time."""

    kind = "REPLICATION_TIMEOUT"


_BY_KIND = {
    cls.kind: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        PayloadTooLargeError,
        TooManyRequestsError,
        TimeoutError,
        UnavailableError,
        UnsupportedError,
        InternalError,
        ClosedError,
        PreconditionFailedError,
        ReplicationTimeoutError,
    )
}


def _make(kind: str, message: str, code: int | None, operation: str | None, endpoint: str | None) -> OrbitMQError:
    """The exception for an SDK error (called by the native module)."""
    cls = _BY_KIND.get(kind, OrbitMQError)
    err = cls(message, code, operation, endpoint)
    if cls is OrbitMQError:
        err.kind = kind
    return err
