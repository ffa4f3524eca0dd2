"""Listener and transaction-checker callables, adapted once for the native module.

The adapted callable is called on one of the runtime's blocking threads with a
``MessageView``; it always returns a value of the failure value's type. A coroutine function's
coroutine runs on the event loop the client was made in (when one was running then), else on a
background loop of its own. An exception, or a return value of another type, is logged on the
``orbitmq`` logger and counts as the failure value (``ConsumeResult.FAILURE`` for a listener,
``TransactionResolution.UNKNOWN`` for a checker).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable
from typing import Any, Callable, TypeVar

logger = logging.getLogger("orbitmq")

T = TypeVar("T")

_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """A loop on a daemon thread, for coroutine callbacks of clients made outside a loop."""
    global _background
    with _background_lock:
        if _background is None or _background.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="orbitmq-callbacks", daemon=True).start()
            _background = loop
        return _background


async def _wait(awaitable: Awaitable[T]) -> T:
    return await awaitable


def adapt(fn: Callable[[Any], Any], loop: asyncio.AbstractEventLoop | None, failure: T) -> Callable[[Any], T]:
    if not callable(fn):
        raise TypeError(f"expected a callable, got {fn!r}")
    kind = type(failure)

    def call(message: Any) -> T:
        try:
            out = fn(message)
            if asyncio.iscoroutine(out) or isinstance(out, Awaitable):
                target = loop if loop is not None and loop.is_running() else _background_loop()
                out = asyncio.run_coroutine_threadsafe(_wait(out), target).result()
            if not isinstance(out, kind):
                raise TypeError(f"{fn!r} returned {out!r}, not a {kind.__name__}")
            return out
        except BaseException:  # noqa: BLE001 - the message must be settled whatever happens
            logger.exception(
                "%s failed on message %s; counted as %s",
                getattr(fn, "__qualname__", fn),
                getattr(message, "message_id", "?"),
                failure,
            )
            return failure

    return call
