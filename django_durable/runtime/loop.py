"""A deterministic asyncio event loop for one workflow: FIFO callbacks, no I/O, history time.

`asyncio.gather`, tasks and futures work on it unchanged; `call_later` becomes a durable
timer, so `asyncio.sleep` inside a workflow is durable too.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import logging
import sys
from asyncio import events
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..observability.logs import ScopedLogger

# The runtime knows no execution: the engine names it around each call (`call_in_scope`).
logger = ScopedLogger(logging.getLogger(__name__))


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
                if handle._cancelled:
                    continue
                try:
                    handle._run()
                except (SystemExit, KeyboardInterrupt):
                    # Raised by workflow code (the worker takes its signals in its own loop).
                    # A task re-raises these after storing them as its outcome, so they
                    # reach whoever awaits it like any other exception, and never the worker.
                    pass
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
        return self._start_timer(delay, callback, args, context)

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
        caller = _as_completed_caller(coro)
        if caller is not None:
            _close_unstarted(coro, caller)
            raise TypeError(
                "asyncio.as_completed() takes futures or tasks in a workflow, not coroutines: "
                "it would start them in memory-address order, which differs between runs, so "
                "a replay could hand one call's result to another. Start them in a fixed order "
                "first: asyncio.as_completed([asyncio.ensure_future(c) for c in coroutines])."
            )
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


# `asyncio.as_completed` (and, from Python 3.13, the iterator it returns) wraps each awaitable
# in a task while iterating a set of them: in memory-address order for coroutines.
_AS_COMPLETED_CODES = frozenset(
    fn.__code__
    for fn in (
        asyncio.tasks.as_completed,
        getattr(getattr(asyncio.tasks, "_AsCompletedIterator", None), "__init__", None),
    )
    if hasattr(fn, "__code__")
)


def _as_completed_caller(coro) -> FrameType | None:
    """The frame of `asyncio.as_completed` if it is turning a workflow's coroutine into a task.

    The callers between it and `create_task` are `ensure_future` (and, on Python 3.11, a
    set comprehension). Other awaitables come wrapped by `ensure_future` in
    `_wrap_awaitable`; they are allowed, since only a future's completion orders them.
    """
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    if code is not None and code.co_name == "_wrap_awaitable":
        return None
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None or frame.f_code in _AS_COMPLETED_CODES:
            return frame
        frame = frame.f_back
    return None


def _close_unstarted(coro, caller: FrameType) -> None:
    """Close the refused coroutines, so that none warns it was never awaited besides the
    error (those of a generator argument are out of reach: it has been consumed)."""
    coro.close()
    given = caller.f_locals.get("fs", caller.f_locals.get("aws"))
    if isinstance(given, list | tuple | set | frozenset):
        for awaitable in given:
            if inspect.iscoroutine(awaitable) and (
                inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED
            ):
                awaitable.close()
