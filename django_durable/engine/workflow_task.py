"""One workflow task: rebuild (or resume) the workflow, deliver new inputs, record what it did."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import DatabaseError, DataError, IntegrityError
from django.utils import timezone

from .. import store
from ..constants import EventKind
from ..exceptions import DurableError
from ..payloads import describe_exception
from ..registry import register
from ..runtime import Event, WorkflowInfo, WorkflowInstance, replay
from ..store import Inbox, LeaseLost, WorkflowClaim
from .sticky import StickyCache
from .workflow_thread import WorkflowTaskStuck, WorkflowThread

T = TypeVar("T")
RunWorkflowCode = Callable[..., Awaitable[Any]]  # (fn, *args) -> fn's result, where code runs


class UnstorableOutcome(DurableError):
    """The database refused what a workflow task produced (a value it cannot store)."""


logger = logging.getLogger("django_durable.engine")


@dataclass
class WorkflowTaskResult:
    """What became of a workflow task: the instance after it, or why it was parked."""

    instance: WorkflowInstance | None = None
    parked: str = ""
    lease_lost: bool = False


def _new_inputs(
    instance: WorkflowInstance, inbox: Inbox, cancel_reason: str | None, now: datetime
) -> list[Event]:
    moment = now.timestamp()
    inputs = [
        Event(EventKind.TIMER_FIRED, seq)
        for seq, fire_at in sorted(instance.timers.items(), key=lambda item: (item[1], item[0]))
        if fire_at <= moment
    ]
    inputs += [event for _, event in inbox.activity_outcomes]
    inputs += [event for _, event in inbox.children]
    inputs += [event for _, event in inbox.signals]
    if cancel_reason is not None and not instance.cancel_delivered:
        inputs.append(Event(EventKind.CANCEL_REQUESTED, data={"reason": cancel_reason}))
    return inputs


def _next_wake(instance: WorkflowInstance, timeout_at: datetime | None) -> datetime | None:
    """When the workflow task is due again without new input: its next timer or timeout."""
    if instance.done:
        return None
    moments = [datetime.fromtimestamp(at, tz=UTC) for at in instance.timers.values()]
    if timeout_at is not None:
        moments.append(timeout_at)
    return min(moments, default=None)


async def _park(claim: WorkflowClaim, exc: BaseException) -> WorkflowTaskResult:
    logger.error("Parking execution %s: %s", claim.execution_id, exc)
    try:
        await store.apark_execution(claim, describe_exception(exc))
    except LeaseLost:
        return WorkflowTaskResult(lease_lost=True)
    return WorkflowTaskResult(parked=str(exc))


async def _instance_for(
    claim: WorkflowClaim, cache: StickyCache | None, run: RunWorkflowCode
) -> tuple[WorkflowInstance, int]:
    """The workflow as of its recorded history, resumed from the cache when that is current."""
    cached = cache.take(claim.execution_id) if cache is not None else None
    if cached is not None:
        newer = await store.aload_history(claim.execution_id, after=cached.history_length)
        if not newer:
            cache.hits += 1
            return cached.instance, cached.history_length
    if cache is not None:
        cache.misses += 1
    history = await store.aload_history(claim.execution_id)
    info = WorkflowInfo(
        execution_id=claim.execution_id,
        workflow_name=claim.workflow_name,
        workflow_id=claim.workflow_id,
        parent_id=claim.parent_id,
    )
    definition = register.get_workflow(claim.workflow_name)
    instance = await run(replay, definition, info, history[0].data["input"], history)
    return instance, len(history)


async def _here(fn: Callable[..., T], *args: Any) -> T:
    """Run workflow code on the calling thread (run_workflow and tests)."""
    return fn(*args)


async def run_workflow_task(
    claim: WorkflowClaim,
    *,
    now: datetime | None = None,
    cache: StickyCache | None = None,
    thread: WorkflowThread | None = None,
) -> WorkflowTaskResult:
    """Run the claimed workflow task to its next wait and record it.

    A non-determinism error (or a workflow this process does not know, or workflow code that
    never yields on `thread`) parks the execution untouched; a lost lease discards the work;
    an outcome the database refuses to store parks it too. None of these raises.
    """
    now = now or timezone.now()
    if thread is not None:
        what = f"{claim.workflow_name!r} (execution {claim.execution_id})"
        run: RunWorkflowCode = functools.partial(thread.call, what)
    else:
        run = _here
    try:
        instance, history_length = await _instance_for(claim, cache, run)
        inbox = await store.aload_inbox(
            claim.execution_id,
            activities=instance.awaits_activities,
            children=instance.awaits_children,
        )
        inputs = _new_inputs(instance, inbox, claim.cancel_reason, now)
        events: list[Event] = []
        started = Event(EventKind.WORKFLOW_TASK_STARTED, data={"time": now.timestamp()})
        if claim.timeout_at is not None and now >= claim.timeout_at:
            # Its code does not run again; its activities and children are canceled.
            events = [started, Event(EventKind.WORKFLOW_TIMED_OUT)]
            instance = None
        elif inputs or not instance.started:
            events = [started, *inputs]
            events += await run(instance.activate, events)
        next_wake_at = None if instance is None else _next_wake(instance, claim.timeout_at)
    except DatabaseError:
        raise  # transient: the lease expires and the task is tried again
    except WorkflowTaskStuck as exc:
        if cache is not None:
            cache.clear()  # their greenlets belong to the abandoned thread
        return await _park(claim, exc)
    except Exception as exc:  # non-determinism, an unknown workflow, or a bug: never fatal
        return await _park(claim, exc)
    try:
        await store.arecord_workflow_task(
            claim,
            history_length=history_length,
            events=events,
            delivered_activity_ids=[pk for pk, _ in inbox.activity_outcomes],
            delivered_child_ids=[pk for pk, _ in inbox.children],
            consumed_signal_ids=[pk for pk, _ in inbox.signals],
            next_wake_at=next_wake_at,
            now=now,
        )
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return WorkflowTaskResult(instance=instance, lease_lost=True)
    except (DataError, IntegrityError) as exc:
        # Permanent for this task: trying it again would fail the same way, for ever.
        return await _park(
            claim,
            UnstorableOutcome(
                f"The database refused to record a workflow task of {claim.workflow_name!r}: "
                f"{exc}".strip()
            ),
        )
    if cache is not None and instance is not None:
        cache.put(claim.execution_id, instance, history_length + len(events))
    return WorkflowTaskResult(instance=instance)
