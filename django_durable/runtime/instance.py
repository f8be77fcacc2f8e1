"""`WorkflowInstance`: one workflow's coroutine on its own loop, driven by activations.

An activation is a list of input events (the first one `workflow_task_started`, holding
the time); the instance applies them, runs until every task waits, and returns the
commands the code issued. The engine records those; replay feeds the recorded inputs back.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import math
import numbers
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import greenlet

from ..conf import durable_setting
from ..constants import EventKind, ExecutionStatus
from ..exceptions import (
    ActivityError,
    NonDeterminismError,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowTimedOut,
)
from ..payloads import describe_exception, storable_error, to_json_value
from ..registry import (
    ACTIVITY_TIMEOUTS,
    MAX_DURATION_SECONDS,
    ActivityDefinition,
    RetryPolicy,
    WorkflowDefinition,
    register,
)
from .context import WorkflowContext, WorkflowInfo
from .events import Event
from .loop import WorkflowLoop
from .versioning import VersionMarkers


def checked_seconds(value: Any, what: str, *, positive: bool = False) -> float:
    """`value` as a duration in seconds, or a clear error raised at the workflow's own call.

    Checked where the workflow asks, so that it can catch the error: an infinite or far-off
    fire time, once recorded, would break every later workflow task of the execution. A
    negative duration counts as 0 (as in `asyncio.sleep`) unless `positive` is required.

    Raises:
        TypeError: `value` is not a number.
        ValueError: it is not finite, over `MAX_DURATION_SECONDS`, or not positive when
            `positive` is required.
    """
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}.")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds <= MAX_DURATION_SECONDS):
        raise ValueError(
            f"{what} must be a finite number of seconds, at most {MAX_DURATION_SECONDS} "
            f"(100 years), not {value!r}."
        )
    if positive and seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}.")
    return max(0.0, seconds)


class WorkflowInstance(VersionMarkers):
    def __init__(
        self, definition: WorkflowDefinition, info: WorkflowInfo, inputs: dict[str, Any]
    ) -> None:
        self.definition = definition
        self.info = info
        self.inputs = inputs
        self.loop = WorkflowLoop(self._start_asyncio_timer)
        self.ctx = WorkflowContext(self)
        self.random = random.Random(info.execution_id.int)
        # Timers the workflow still waits for: seq -> fire time (epoch seconds).
        self.timers: dict[int, float] = {}
        self._seq = 0
        self._activities: dict[int, tuple[str, asyncio.Future]] = {}
        # Every timer not fired yet, canceled ones too: old histories may still fire those.
        self._timer_handles: dict[int, _Timer] = {}
        self._signals: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        # name -> (the last command number issued when it began waiting, its future):
        # that number places the wait among the commands in `waits()`.
        self._signal_waiters: dict[str, collections.deque[tuple[int, asyncio.Future]]] = (
            collections.defaultdict(collections.deque)
        )
        self._commands: list[Event] = []
        self._main: asyncio.Task | None = None
        self.completion: Event | None = None
        self._children: dict[int, ChildHandle] = {}
        self.cancel_delivered = False
        self._init_markers()

    # -- driving ---------------------------------------------------------------------------

    def activate(self, inputs: list[Event], recorded: list[Event] | None = None) -> list[Event]:
        """Apply one activation's inputs and return the commands (and end) the code issued.

        `recorded` is what history holds as this activation's commands when it is replayed
        (None when it runs live): `ctx.patched()` and `ctx.get_version()` follow it.
        """
        if self.completion is not None:
            raise RuntimeError("This workflow instance has already ended.")
        started, *delivered = inputs
        if started.kind != EventKind.WORKFLOW_TASK_STARTED:
            raise ValueError("An activation starts with a workflow_task_started event.")
        self.loop.set_time(started.data["time"])
        if self._main is None:
            self._main = self.loop.create_task(self._run(), name=self.info.workflow_name)
        self._recorded = recorded
        for event in delivered:
            self._deliver(event)
        self.loop.run_until_idle()
        self._recorded = None
        if self.nondeterminism is not None:
            if self._main.done() and not self._main.cancelled():
                self._main.exception()  # retrieved: the error is raised here instead
            raise self.nondeterminism
        if self._main.done():
            self.completion = self._completion_event(self._main)
            self._commands.append(self.completion)
            self.loop.close()
        commands, self._commands = self._commands, []
        return commands

    async def _run(self) -> Any:
        fn = self.definition.fn
        if self.definition.is_async:
            return await fn(self.ctx, **self.inputs)
        return await _drive_plain_function(functools.partial(fn, self.ctx, **self.inputs))

    def _completion_event(self, task: asyncio.Task) -> Event:
        if task.cancelled():
            return Event(EventKind.WORKFLOW_CANCELED)
        error = task.exception()
        if isinstance(error, asyncio.CancelledError):
            return Event(EventKind.WORKFLOW_CANCELED)
        if error is None:
            try:
                result = to_json_value(task.result(), "The workflow's result")
            except Exception as exc:
                error = exc
            else:
                return Event(EventKind.WORKFLOW_COMPLETED, data={"result": result})
        return Event(EventKind.WORKFLOW_FAILED, data={"error": describe_exception(error)})

    def wait(self, awaitable: asyncio.Future) -> Any:
        """Hand `awaitable` to an async workflow, or block a plain one until it resolves."""
        if self.definition.is_async:
            return awaitable
        current = greenlet.getcurrent()
        if current.parent is None:
            raise RuntimeError("A plain workflow's context can only be used inside the workflow.")
        return current.parent.switch(awaitable)

    # -- what the waiting side knows ------------------------------------------------------

    @property
    def awaits_activities(self) -> bool:
        return bool(self._activities)

    @property
    def awaits_children(self) -> bool:
        return bool(self._children)

    @property
    def started(self) -> bool:
        return self._main is not None

    @property
    def done(self) -> bool:
        return self.completion is not None

    def waits(self) -> list[dict[str, Any]]:
        """What the workflow waits for now, in command order, as plain JSON for operators:

        `{"kind": "activity", "seq", "name"}` for an activity without an outcome yet,
        `{"kind": "child", "seq", "name", "execution_id"}` for a child not ended yet,
        `{"kind": "signal", "name"}` once per signal name awaited (placed where the wait
        began), `{"kind": "timer", "seq", "until"}` for a pending timer (ISO 8601, UTC).
        An ended workflow waits for nothing, whatever it left unawaited. Always storable:
        the engine records it with every workflow task.
        """
        if self.done:
            return []
        found: list[tuple[tuple[int, int], dict[str, Any]]] = []
        for seq, (name, future) in self._activities.items():
            if not future.done():
                found.append(((seq, 0), {"kind": "activity", "seq": seq, "name": name}))
        for seq, child in self._children.items():
            if not child.future.done():
                entry = {"kind": "child", "seq": seq, "name": child.workflow_name}
                found.append(((seq, 0), entry | {"execution_id": str(child.execution_id)}))
        for seq, fire_at in self.timers.items():
            until = datetime.fromtimestamp(fire_at, tz=UTC).isoformat()
            found.append(((seq, 0), {"kind": "timer", "seq": seq, "until": until}))
        for name, waiters in self._signal_waiters.items():
            after = min((after for after, w in waiters if not w.done()), default=None)
            if after is not None:  # after the command issued last, before the next one
                # The one name the code chose freely: made storable (NUL, surrogates, not text).
                found.append(((after, 1), storable_error({"kind": "signal", "name": name})))
        return [entry for _, entry in sorted(found, key=lambda item: item[0])]

    def waiting_on(self) -> str:
        """What the workflow waits for, in words, for errors that must explain a stall."""
        waits = self.waits()
        named = {"signal": "signal", "activity": "activity", "child": "child workflow"}
        parts = [
            f"{named[kind]} {w['name']!r}" for kind in named for w in waits if w["kind"] == kind
        ]
        timers = sum(w["kind"] == "timer" for w in waits)
        if timers:
            parts.append(f"{timers} timer(s)")
        return ", ".join(parts) or "nothing"

    # -- commands --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def schedule_activity(
        self, activity, args: tuple, kwargs: dict, overrides: dict | None = None
    ) -> asyncio.Future:
        definition = register.get_activity(activity)
        payload = to_json_value(
            {"args": list(args), "kwargs": kwargs},
            f"The arguments of activity {definition.name!r}",
        )
        payload["options"] = activity_options(definition, overrides or {})
        queue = activity_queue(definition, (overrides or {}).get("queue"))
        seq = self._next_seq()
        future = self.loop.create_future()
        self._activities[seq] = (definition.name, future)
        self._commands.append(
            Event(
                EventKind.ACTIVITY_SCHEDULED,
                seq,
                definition.name,
                {**payload, "queue": queue},
            )
        )
        return future

    def start_child(
        self, workflow, inputs: dict[str, Any], execution_timeout: float | None
    ) -> ChildHandle:
        definition = register.get_workflow(workflow)
        if execution_timeout is not None:
            execution_timeout = checked_seconds(
                execution_timeout, "execution_timeout", positive=True
            )
        try:
            inspect.signature(definition.fn).bind(None, **inputs)
        except TypeError as exc:
            raise TypeError(f"Bad input for child workflow {definition.name!r}: {exc}.") from None
        payload = to_json_value(inputs, f"The input of child workflow {definition.name!r}")
        seq = self._next_seq()
        # Derived, not drawn: the same on every replay, and known before the child exists.
        child_id = uuid.uuid5(self.info.execution_id, f"child-{seq}")
        handle = ChildHandle(self, child_id, definition.name, self.loop.create_future())
        self._children[seq] = handle
        self._commands.append(
            Event(
                EventKind.CHILD_WORKFLOW_STARTED,
                seq,
                definition.name,
                {
                    "execution_id": str(child_id),
                    "input": payload,
                    "timeout": execution_timeout or definition.timeout,
                },
            )
        )
        return handle

    def _start_timer(self, delay: float, callback, args, context) -> _Timer:
        """Issue a timer command; `delay` has passed `checked_seconds`."""
        seq = self._next_seq()
        fire_at = self.loop.time() + delay
        handle = _Timer(self.timers, seq, fire_at, callback, args, self.loop, context)
        self.timers[seq] = fire_at
        self._timer_handles[seq] = handle
        self._commands.append(
            Event(EventKind.TIMER_STARTED, seq, data={"duration": delay, "fire_at": fire_at})
        )
        return handle

    def _start_asyncio_timer(self, delay: float, callback, args, context) -> _Timer:
        """The loop's `call_later`: `asyncio.sleep`, `wait_for` and `timeout` land here."""
        what = "A timer in a workflow (asyncio.sleep, asyncio.wait_for, asyncio.timeout)"
        return self._start_timer(checked_seconds(delay, what), callback, args, context)

    def start_sleep(self, seconds: float) -> asyncio.Future:
        delay = checked_seconds(seconds, "ctx.sleep()")
        future = self.loop.create_future()
        timer = self._start_timer(delay, _resolve, (future, None), None)
        future.add_done_callback(lambda _: timer.cancel())  # e.g. under asyncio.wait_for
        return future

    def wait_signal(self, name: str, timeout: float | None) -> asyncio.Future:
        if timeout is not None:  # checked first: the call fails the same way with or without
            timeout = checked_seconds(timeout, "ctx.wait_signal()'s timeout")  # a signal
        future = self.loop.create_future()
        if self._signals[name]:
            future.set_result(self._signals[name].popleft())
            return future
        self._signal_waiters[name].append((self._seq, future))
        if timeout is not None:
            timer = self._start_timer(timeout, _resolve, (future, None), None)
            future.add_done_callback(lambda _: timer.cancel())
        return future

    # -- inputs ----------------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        handler = self._input_handlers.get(event.kind)
        if handler is None:
            raise ValueError(f"{event.kind!r} is not an input event.")
        handler(self, event)

    def _activity_future(self, event: Event) -> tuple[str, asyncio.Future]:
        try:
            return self._activities.pop(event.command_seq)
        except KeyError:
            raise NonDeterminismError(
                f"History has {event.describe()}, but the workflow code never scheduled "
                f"activity command #{event.command_seq}."
            ) from None

    def _on_activity_completed(self, event: Event) -> None:
        _, future = self._activity_future(event)
        _resolve(future, event.data.get("result"))

    def _on_activity_failed(self, event: Event) -> None:
        name, future = self._activity_future(event)
        if not future.done():
            future.set_exception(ActivityError(name, event.data.get("error", {})))

    def _on_timer_fired(self, event: Event) -> None:
        handle = self._timer_handles.pop(event.command_seq, None)
        if handle is None:
            raise NonDeterminismError(
                f"History has {event.describe()}, but the workflow code never started "
                f"timer command #{event.command_seq}."
            )
        self.timers.pop(event.command_seq, None)
        if not handle.cancelled():
            self.loop.call_soon(handle._callback, *handle._args, context=handle._context)

    def _on_signal_received(self, event: Event) -> None:
        payload = event.data.get("payload")
        waiters = self._signal_waiters[event.name]
        while waiters:
            _, waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(payload)
                return
        self._signals[event.name].append(payload)

    def _on_cancel_requested(self, event: Event) -> None:
        self.cancel_delivered = True
        self._main.cancel(event.data.get("reason") or None)

    def _on_child_ended(self, event: Event) -> None:
        try:
            handle = self._children.pop(event.command_seq)
        except KeyError:
            raise NonDeterminismError(
                f"History has {event.describe()}, but the workflow code never started "
                f"child workflow command #{event.command_seq}."
            ) from None
        if handle.future.done():
            return
        status = event.data.get("status")
        if status == ExecutionStatus.COMPLETED:
            handle.future.set_result(event.data.get("result"))
        elif status == ExecutionStatus.FAILED:
            handle.future.set_exception(WorkflowFailed(handle.execution_id, event.data["error"]))
        elif status == ExecutionStatus.TIMED_OUT:
            handle.future.set_exception(
                WorkflowTimedOut(f"Child workflow execution {handle.execution_id} timed out.")
            )
        else:
            handle.future.set_exception(
                WorkflowCanceled(f"Child workflow execution {handle.execution_id} was canceled.")
            )

    _input_handlers = {
        EventKind.CHILD_WORKFLOW_ENDED: _on_child_ended,
        EventKind.ACTIVITY_COMPLETED: _on_activity_completed,
        EventKind.ACTIVITY_FAILED: _on_activity_failed,
        EventKind.TIMER_FIRED: _on_timer_fired,
        EventKind.SIGNAL_RECEIVED: _on_signal_received,
        EventKind.CANCEL_REQUESTED: _on_cancel_requested,
    }


def activity_options(definition: ActivityDefinition, overrides: dict[str, Any]) -> dict[str, Any]:
    """The retry policy and timeouts an activity is scheduled with: call, then definition,
    then `DURABLE["RETRY_POLICY"]`. Recorded with the command, so replays never re-decide."""
    policy = overrides.get("retry_policy")
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a RetryPolicy, not {policy!r}.")
    policy = (
        policy or definition.retry_policy or RetryPolicy.from_dict(durable_setting("RETRY_POLICY"))
    )
    options: dict[str, Any] = {"retry_policy": policy.to_dict()}
    for name in ACTIVITY_TIMEOUTS:
        value = overrides.get(name)
        if value is not None:
            value = checked_seconds(value, name, positive=True)
        value = value if value is not None else getattr(definition, name)
        if value is not None:
            options[name] = float(value)
    if definition.transactional:
        options["transactional"] = True
    return options


MAX_QUEUE_LENGTH = 100  # ActivityTask.queue's column


def activity_queue(definition: ActivityDefinition, queue: Any) -> str:
    """The queue an activity is scheduled on: the call's `queue=`, else the definition's."""
    if queue is None:
        return definition.queue
    if not isinstance(queue, str):
        raise TypeError(f"queue must be a string, not {type(queue).__name__}.")
    if not 0 < len(queue) <= MAX_QUEUE_LENGTH:
        raise ValueError(
            f"queue must be 1 to {MAX_QUEUE_LENGTH} characters long, not {len(queue)}."
        )
    return queue


class ChildHandle:
    """A started child workflow: its execution id now, its result when it ends."""

    def __init__(
        self,
        instance: WorkflowInstance,
        execution_id: uuid.UUID,
        workflow_name: str,
        future: asyncio.Future,
    ) -> None:
        self._instance = instance
        self.execution_id = execution_id
        self.workflow_name = workflow_name
        self.future = future

    def result(self) -> Any:
        """The child's result (awaitable in an async workflow).

        Raises:
            WorkflowFailed, WorkflowCanceled, WorkflowTimedOut: the child ended that way.
        """
        return self._instance.wait(self.future)

    def __await__(self):
        return self.future.__await__()


class _Timer(asyncio.TimerHandle):
    """A durable timer's handle. Canceling it (a signal came first, `asyncio.wait_for`
    finished early) stops the workflow waiting for it, so the engine neither wakes it nor
    records the timer firing."""

    __slots__ = ("_pending", "_seq")

    def __init__(self, pending: dict[int, float], seq: int, *args: Any) -> None:
        super().__init__(*args)
        self._pending = pending
        self._seq = seq

    def cancel(self) -> None:
        self._pending.pop(self._seq, None)
        super().cancel()


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


async def _drive_plain_function(call) -> Any:
    """Run a plain `def` workflow in a greenlet; each context call switches out to await."""
    worker = greenlet.greenlet(call)
    request = worker.switch()
    while not worker.dead:
        try:
            value = await request
        except BaseException as exc:  # CancelledError too: it must reach the workflow's code
            request = worker.throw(exc)
        else:
            request = worker.switch(value)
    return request
