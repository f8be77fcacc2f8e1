"""The thread workflow code runs on, and the detector that stops a workflow that never yields.

Workflow code is meant to run for microseconds between awaits. If it loops forever or
blocks (`time.sleep`, blocking I/O) on the worker's event loop, the whole worker stalls:
no heartbeats, no other workflow, no shutdown. So the worker runs workflow code (replays
and activations) on one dedicated thread and waits for it without blocking its loop. Past
`DURABLE["WORKFLOW_TASK_TIMEOUT"]` the task is given up: its execution is parked with the
reason, the stuck thread is asked to stop (an exception raised into it) and abandoned,
and a fresh thread takes over.

One thread, not several: a plain `def` workflow lives in a greenlet, which can only be
resumed on the thread that created it. That is also why the sticky cache is emptied when
the thread is replaced.
"""

from __future__ import annotations

import asyncio
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import DurableError

T = TypeVar("T")
STOP_RETRY_SECONDS = 1.0  # how often an abandoned thread is asked again to stop


class WorkflowTaskStuck(DurableError):
    """Workflow code ran past `DURABLE["WORKFLOW_TASK_TIMEOUT"]` without yielding."""


class WorkflowCodeEscaped(DurableError):
    """Workflow code raised a `BaseException` (SystemExit, KeyboardInterrupt...) that the
    runtime did not turn into a failure; the worker turns it into this instead of dying."""


class _StopWorkflowCode(BaseException):
    """Raised into an abandoned thread to end the workflow code it is stuck in."""


class _Lane:
    """One daemon thread running calls in order (daemon: a stuck one never blocks exit)."""

    def __init__(self) -> None:
        self.ident: int | None = None
        self.busy = False  # running a call now
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="durable-workflow", daemon=True).start()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable, args: tuple) -> asyncio.Future:
        future = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        self.ident = threading.get_ident()
        try:
            self._serve_calls()
        except _StopWorkflowCode:
            pass  # an abandoned lane, asked to stop just as its call ended

    def _serve_calls(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            self.busy = True
            try:
                outcome = (True, _call_workflow_code(fn, args))
            except BaseException as exc:  # delivered to the caller, whatever it is
                outcome = (False, exc)
            finally:
                self.busy = False
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:
                return  # the loop is closed: the worker is exiting


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _discard(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _call_workflow_code(fn: Callable[..., T], args: tuple) -> T:
    try:
        return fn(*args)
    except _StopWorkflowCode:
        raise WorkflowTaskStuck("Stopped after it overran.") from None
    except Exception:
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: never the worker's
        raise WorkflowCodeEscaped(
            f"Workflow code raised {type(exc).__name__}: {exc}".rstrip(": ")
        ) from exc


class WorkflowThread:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.replaced = 0  # threads abandoned because their workflow code never yielded
        self._lane = _Lane()
        self._lock = asyncio.Lock()
        self._abandoned: list[_Lane] = []

    async def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the workflow thread; `WorkflowTaskStuck` if it overruns.

        `what` names the workflow for the error message.
        """
        async with self._lock:  # one at a time, so the timeout measures running, not queueing
            future = self._lane.submit(asyncio.get_running_loop(), fn, args)
            try:
                return await asyncio.wait_for(asyncio.shield(future), self.timeout)
            except TimeoutError:
                future.add_done_callback(_discard)  # whatever it ends with is void now
                self._abandon()
                raise WorkflowTaskStuck(
                    f"The workflow code of {what} ran for more than {self.timeout:g} s without "
                    f"yielding, so the worker stopped it. Workflow code must not block: no "
                    f"busy loops, time.sleep or blocking I/O (use ctx.sleep and activities). "
                    f"The execution is parked; deploy fixed code and it resumes."
                ) from None

    def _abandon(self) -> None:
        stuck, self._lane = self._lane, _Lane()
        stuck.close()
        self.replaced += 1
        self._abandoned.append(stuck)
        self._ask_to_stop()

    def _ask_to_stop(self) -> None:
        """Raise `_StopWorkflowCode` in abandoned threads while they still run workflow code.

        Pure-Python loops stop at once; a thread in a blocking call stops when it returns;
        code that swallows the exception is asked again every second.
        """
        self._abandoned = [lane for lane in self._abandoned if lane.busy]
        for lane in self._abandoned:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(lane.ident), ctypes.py_object(_StopWorkflowCode)
            )
        if self._abandoned:
            asyncio.get_running_loop().call_later(STOP_RETRY_SECONDS, self._ask_to_stop)

    def close(self) -> None:
        self._lane.close()
