"""A deterministic asyncio event loop for one workflow: FIFO callbacks, no I/O, history time.

`asyncio.gather`, tasks and futures work on it unchanged; `call_later` becomes a durable
timer, so `asyncio.sleep` inside a workflow is durable too.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from asyncio import events
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("django_durable.runtime")


class _Future(asyncio.Future):
    """A future whose hash is its creation order, not its memory address.

    `asyncio.wait` and `asyncio.as_completed` keep futures in sets; with these hashes a
    set iterates in the same order on every replay, so they are deterministic too.
    """

    def __init__(self, identity: int, *, loop: asyncio.AbstractEventLoop) -> None:
        self._identity = identity  # first: the base initializer may hash it
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._identity

    def __eq__(self, other: object) -> bool:
        return self is other


class _Task(asyncio.Task):
    """A task hashed by creation order, for the same reason as `_Future`."""

    def __init__(self, identity: int, coro, **kwargs) -> None:
        self._identity = identity  # first: the base initializer registers it in a set
        super().__init__(coro, **kwargs)

    def __hash__(self) -> int:
        return self._identity

    def __eq__(self, other: object) -> bool:
        return self is other


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, start_timer: Callable[..., asyncio.TimerHandle]) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._start_timer = start_timer
        self._now = 0.0
        self._closed = False
        self._identities = 0

    def set_time(self, now: float) -> None:
        self._now = now

    def time(self) -> float:
        return self._now

    def run_until_idle(self) -> None:
        """Run ready callbacks, in the order they were scheduled, until none is left."""
        outer = events._get_running_loop()
        events._set_running_loop(self)
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            events._set_running_loop(outer)

    def call_soon(
        self, callback: Callable, *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable,
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self._start_timer(max(0.0, delay), callback, args, context)

    def call_at(
        self,
        when: float,
        callback: Callable,
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self._now, callback, *args, context=context)

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any):
        raise RuntimeError("A workflow's event loop cannot be used from another thread.")

    def create_future(self) -> asyncio.Future:
        return _Future(self._next_identity(), loop=self)

    def create_task(self, coro, *, name=None, context=None) -> asyncio.Task:
        task = _Task(self._next_identity(), coro, loop=self, name=name, context=context)
        # A suspended workflow is dropped on purpose (eviction, replay); that is no leak.
        task._log_destroy_pending = False
        return task

    def _next_identity(self) -> int:
        self._identities += 1
        return self._identities

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        logger.error(
            "Unhandled error in a workflow task: %s",
            context.get("message"),
            exc_info=context.get("exception"),
        )

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    def get_exception_handler(self):
        return None

    def set_exception_handler(self, handler) -> None:
        raise RuntimeError("A workflow's event loop has a fixed exception handler.")
