"""One workflow task: rebuild (or resume) the workflow, deliver new inputs, record what it did."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import DatabaseError, DataError, IntegrityError
from django.utils import timezone

from .. import store
from ..constants import EventKind
from ..exceptions import DurableError, NonDeterminismError
from ..observability.logs import about, call_in_scope
from ..observability.metrics import metrics
from ..payloads import describe_exception
from ..registry import register
from ..runtime import Event, WorkflowInfo, WorkflowInstance, replay
from ..store import (
    ActivityClaim,
    Inbox,
    LeaseLost,
    RecordedTask,
    TaskInputs,
    TaskRecord,
    WorkflowClaim,
)
from . import telemetry
from .sticky import StickyCache
from .workflow_thread import WorkflowTaskStuck, WorkflowThread

T = TypeVar("T")
RunWorkflowCode = Callable[..., Awaitable[Any]]  # (fn, *args) -> fn's result, where code runs


class UnstorableOutcome(DurableError):
    """The database refused what a workflow task produced (a value it cannot store)."""


logger = logging.getLogger(__name__)


@dataclass
class WorkflowTaskResult:
    """What became of a workflow task: the instance after it, or why it was parked."""

    instance: WorkflowInstance | None = None
    parked: str = ""
    lease_lost: bool = False
    activities: list[ActivityClaim] = field(default_factory=list)  # leased to this worker
    next_wake_at: datetime | None = None  # when it is due again without new input


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
    logger.error("Parking execution %s: %s", claim.execution_id, exc, extra=about(claim))
    error: dict[str, Any] = describe_exception(exc)
    if isinstance(exc, NonDeterminismError):
        # The admin shows the recorded command and the new one side by side (None where
        # the error compared no two commands).
        error |= {"expected": exc.expected, "found": exc.found}
    try:
        await store.apark_execution(claim, error)
    except LeaseLost:
        return WorkflowTaskResult(lease_lost=True)
    return WorkflowTaskResult(parked=str(exc))


def _replayed(
    claim: WorkflowClaim, history: list[Event]
) -> tuple[Callable[..., WorkflowInstance], tuple]:
    """The call that rebuilds the workflow from its history (run where workflow code runs)."""
    info = WorkflowInfo(
        execution_id=claim.execution_id,
        workflow_name=claim.workflow_name,
        workflow_id=claim.workflow_id,
        parent_id=claim.parent_id,
    )
    definition = register.get_workflow(claim.workflow_name)
    return replay, (definition, info, history[0].data["input"], history)


def _runner(claim: WorkflowClaim, thread: WorkflowThread | None) -> RunWorkflowCode:
    """Where the claim's workflow code runs: on `thread` (watched for never yielding), its
    log records naming the execution (`call_in_scope`)."""
    if thread is None:
        return functools.partial(_here, about(claim))
    return functools.partial(
        thread.call,
        f"{claim.workflow_name!r} (execution {claim.execution_id})",
        call_in_scope,
        about(claim),
    )


async def _here(fields: dict[str, Any], fn: Callable[..., T], *args: Any) -> T:
    """Run workflow code on the calling thread (run_workflow and tests)."""
    return call_in_scope(fields, fn, *args)


@dataclass
class _Activation:
    """A workflow task whose code has run: what to record, and the instance after it."""

    index: int
    instance: WorkflowInstance | None
    record: TaskRecord


LeaseActivities = Callable[[WorkflowClaim, list[Event]], Collection[int]]


async def run_workflow_task(
    claim: WorkflowClaim,
    *,
    now: datetime | None = None,
    cache: StickyCache | None = None,
    thread: WorkflowThread | None = None,
) -> WorkflowTaskResult:
    """Run one claimed workflow task to its next wait and record it (see below)."""
    results = await run_workflow_tasks([claim], now=now, cache=cache, thread=thread)
    return results[0]


async def run_workflow_tasks(
    claims: list[WorkflowClaim],
    *,
    now: datetime | None = None,
    cache: StickyCache | None = None,
    thread: WorkflowThread | None = None,
    lease_activities: LeaseActivities | None = None,
    inputs: TaskInputs | None = None,
) -> list[WorkflowTaskResult]:
    """Run claimed workflow tasks to their next wait and record them together.

    One transaction reads what they need (the histories of those not held in `cache`,
    whose epoch proves current, and every inbox), unless `inputs` read with the claims
    already hold it; their code runs one after the other on
    `thread`; one transaction records them all (`store.record_workflow_tasks`). The
    activities `lease_activities` picks are inserted leased to this worker and returned.
    A non-determinism error (or a workflow this process does not know, or workflow code
    that never yields on `thread`) parks the execution untouched; a lost lease discards the
    work; an outcome the database refuses to store parks it too. None of these raises; a
    database error does (the leases expire and the tasks run again).
    """
    began = time.perf_counter()
    now = now or timezone.now()
    results = [WorkflowTaskResult() for _ in claims]
    cached = [cache.take(c.execution_id) if cache is not None else None for c in claims]
    current = [
        entry is not None and entry.epoch + 1 == claim.epoch
        for entry, claim in zip(cached, claims, strict=True)
    ]
    if cache is not None:
        hits = sum(current)
        cache.hits += hits
        cache.misses += len(claims) - hits
    inputs = inputs or TaskInputs()
    history_of = [
        c.execution_id
        for c, hit in zip(claims, current, strict=True)
        if not hit and c.execution_id not in inputs.histories
    ]
    inbox_of = [c.execution_id for c in claims if c.execution_id not in inputs.inboxes]
    missing = TaskInputs()
    if history_of or inbox_of:
        missing = await store.aload_task_inputs(history_of, inbox_of)
    histories = {**inputs.histories, **missing.histories}
    inboxes = {**inputs.inboxes, **missing.inboxes}
    activations: list[_Activation] = []
    stuck_from: int | None = None
    spans: dict[int, Any] = {}  # by index: the claims that ran here (not after a stuck one)
    traces = [
        telemetry.started_trace(entry, hit, histories.get(claim.execution_id))
        for entry, hit, claim in zip(cached, current, claims, strict=True)
    ]
    try:
        for index, claim in enumerate(claims):
            if stuck_from is not None:
                continue
            spans[index] = telemetry.workflow_task_span(
                claim, traces[index], len(claims), cache_hit=current[index]
            )
            run = _runner(claim, thread)
            try:
                if current[index]:
                    instance, length = cached[index].instance, cached[index].history_length
                else:
                    history = histories[claim.execution_id]
                    rebuild, arguments = _replayed(claim, history)
                    instance, length = await run(rebuild, *arguments), len(history)
                activations.append(
                    await _activate(
                        index, claim, instance, length, inboxes[claim.execution_id], now, run
                    )
                )
            except DatabaseError:
                raise
            except WorkflowTaskStuck as exc:
                if cache is not None:
                    cache.clear()  # their greenlets belong to the abandoned thread
                results[index] = await _park(claim, exc)
                stuck_from = index
            except Exception as exc:  # non-determinism, an unknown workflow, or a bug: never fatal
                results[index] = await _park(claim, exc)
        for activation in activations:
            telemetry.carry_trace(activation.record.events, spans[activation.index])
            if lease_activities is not None and activation.instance is not None:
                activation.record.leased_activity_seqs = lease_activities(
                    activation.record.claim, activation.record.events
                )
        await _record(activations, results, now)
    except BaseException as exc:  # a database error, or the worker cancelling: not theirs
        telemetry.workflow_tasks_abandoned(spans.values(), exc)
        raise
    recorded_events = {a.index: len(a.record.events) for a in activations}
    for index, span in spans.items():
        telemetry.workflow_task_ended(
            claims[index], span, began, results[index], recorded_events.get(index, 0)
        )
    for activation in activations:
        result = results[activation.index]
        if cache is not None and stuck_from is None and not result.lease_lost and not result.parked:
            if activation.instance is not None:
                claim = activation.record.claim
                length = activation.record.history_length + len(activation.record.events)
                cache.put(
                    claim.execution_id,
                    activation.instance,
                    length,
                    claim.epoch,
                    trace=traces[activation.index],
                )
    if stuck_from is not None and stuck_from + 1 < len(claims):
        # The ones after it replay on a fresh thread: the old one's instances are gone.
        rest = await run_workflow_tasks(
            claims[stuck_from + 1 :],
            now=now,
            cache=cache,
            thread=thread,
            lease_activities=lease_activities,
            inputs=TaskInputs(histories, inboxes),
        )
        results[stuck_from + 1 :] = rest
    return results


async def _activate(
    index: int,
    claim: WorkflowClaim,
    instance: WorkflowInstance,
    history_length: int,
    inbox: Inbox,
    now: datetime,
    run: RunWorkflowCode,
) -> _Activation:
    """Deliver the new inputs to the workflow and collect the events of this task."""
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
    record = TaskRecord(
        claim,
        history_length,
        events,
        delivered_activity_ids=[pk for pk, _ in inbox.activity_outcomes],
        delivered_child_ids=[pk for pk, _ in inbox.children],
        consumed_signal_ids=[pk for pk, _ in inbox.signals],
        next_wake_at=None if instance is None else _next_wake(instance, claim.timeout_at),
        leftovers=instance is None or instance.awaits_activities or instance.awaits_children,
        waiting=None if instance is None else instance.waits(),
    )
    return _Activation(index, instance, record)


async def _record(
    activations: list[_Activation], results: list[WorkflowTaskResult], now: datetime
) -> None:
    """Record the batch in one transaction; should the database refuse it, one by one, so
    that a value it cannot store parks only the execution that produced it."""
    if not activations:
        return
    try:
        began = time.perf_counter()
        recorded = await store.arecord_workflow_tasks([a.record for a in activations], now=now)
        metrics().record("workflow_task", len(activations), time.perf_counter() - began)
    except DatabaseError:
        if len(activations) == 1:
            recorded = None
        else:
            logger.warning(
                "Recording %d workflow tasks together failed; one by one.", len(activations)
            )
            recorded = None
    if recorded is not None:
        for activation, done in zip(activations, recorded, strict=True):
            results[activation.index] = _result_of(activation, done)
        return
    for activation in activations:
        claim = activation.record.claim
        try:
            began = time.perf_counter()
            done = (await store.arecord_workflow_tasks([activation.record], now=now))[0]
            metrics().record("workflow_task", 1, time.perf_counter() - began)
        except (DataError, IntegrityError) as exc:
            # Permanent for this task: trying it again would fail the same way, for ever.
            results[activation.index] = await _park(
                claim,
                UnstorableOutcome(
                    f"The database refused to record a workflow task of "
                    f"{claim.workflow_name!r}: {exc}".strip()
                ),
            )
            continue
        results[activation.index] = _result_of(activation, done)


def _result_of(activation: _Activation, done: RecordedTask) -> WorkflowTaskResult:
    if done.lost:
        logger.warning(
            "Execution %s is no longer leased to %s.",
            activation.record.claim.execution_id,
            activation.record.claim.owner,
            extra=about(activation.record.claim),
        )
        return WorkflowTaskResult(instance=activation.instance, lease_lost=True)
    return WorkflowTaskResult(
        instance=activation.instance,
        activities=done.activities,
        next_wake_at=activation.record.next_wake_at,
    )
