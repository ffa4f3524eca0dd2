"""One ``Completer`` per event loop, watched with ``loop.add_reader`` (see src/bridge.rs)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ._orbitmq import Completer

_completers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Completer | None] = weakref.WeakKeyDictionary()


def prepare() -> tuple[asyncio.Future[Any], Completer | None, asyncio.AbstractEventLoop]:
    """A future of the running loop, that loop's completer (``None`` if the loop cannot watch
    a descriptor) and the loop."""
    loop = asyncio.get_running_loop()
    try:
        completer = _completers[loop]
    except KeyError:
        completer = Completer()
        try:
            loop.add_reader(completer.fileno(), completer.drain)
        except NotImplementedError:
            completer = None
        _completers[loop] = completer
    return loop.create_future(), completer, loop
