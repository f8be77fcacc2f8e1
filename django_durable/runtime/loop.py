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


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, start_timer: Callable[..., asyncio.TimerHandle]) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._start_timer = start_timer
        self._now = 0.0
        self._closed = False

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
        return asyncio.Future(loop=self)

    def create_task(self, coro, *, name=None, context=None) -> asyncio.Task:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        # A suspended workflow is dropped on purpose (eviction, replay); that is no leak.
        task._log_destroy_pending = False
        return task

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
