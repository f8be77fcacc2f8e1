"""The engine's spans and metrics of workflow tasks and activity attempts, in one place, so
that each call site in the engine stays one line (see `observability`).

A workflow task's span is parented by the trace context its execution was started with
(`WORKFLOW_STARTED`'s `trace`: read from the history the task loads anyway, or from the
sticky cache, which keeps it); it writes its own context into the options of each activity
it schedules (`options["trace"]`), which parents that activity's attempt spans in
whichever process runs them. Nothing here queries the database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections

from ..constants import EventKind
from ..observability import tracing
from ..observability.metrics import metrics
from ..runtime import Event
from ..store.status import due_work
from .sticky import CachedInstance

TRACE_OPTION = "trace"  # the key of an activity's options that carries its parent's context


def started_trace(
    cached: CachedInstance | None, current: bool, history: list[Event] | None
) -> tracing.Carrier | None:
    """The trace context an execution was started with: from its cached instance if that is
    `current`, else from the first event of its `history`."""
    if current and cached is not None:
        return cached.trace
    if history:
        return history[0].data.get("trace")
    return None


def workflow_task_span(
    claim: Any, parent: tracing.Carrier | None, batch_size: int, cache_hit: bool
) -> Any:
    """Start the span of one workflow task (ended by `workflow_task_ended`); `cache_hit`:
    its workflow resumes from the sticky cache instead of replaying its history."""
    if not tracing.enabled():  # the hot path: not even the attributes
        return tracing.NO_SPAN
    return tracing.start_span(
        f"workflow_task {claim.workflow_name}",
        parent=parent,
        kind="consumer",
        attributes=tracing.attributes_of(claim, batch_size=batch_size, cache_hit=cache_hit),
    )


def carry_trace(events: list[Event], span: Any) -> None:
    """Put `span`'s trace context in the options of the activities scheduled in `events`
    (replacing those events), so that their attempts' spans are its children."""
    carrier = None  # made once, for the first activity (most tasks schedule none)
    for position, event in enumerate(events):
        if event.kind != EventKind.ACTIVITY_SCHEDULED:
            continue
        carrier = tracing.carrier_of(span) if carrier is None else carrier
        if not carrier:
            return
        options = {**event.data.get("options", {}), TRACE_OPTION: carrier}
        events[position] = dataclasses.replace(event, data={**event.data, "options": options})


def task_outcome(result: Any) -> str:
    """A workflow task result as a metric label (see `Metrics.workflow_task`)."""
    if result.parked:
        return "parked"
    if result.lease_lost:
        return "lease_lost"
    if result.instance is None or result.instance.done:
        return "ended"
    return "waiting"


def workflow_task_ended(claim: Any, span: Any, began: float, result: Any, events: int) -> None:
    """Report one workflow task: its span ends, its metrics count it."""
    outcome = task_outcome(result)
    tracing.finish(span, error=result.parked or None, outcome=outcome, events=events)
    metrics().workflow_task(claim.workflow_name, outcome, time.perf_counter() - began)


@contextlib.contextmanager
def activity_span(claim: Any) -> Iterator[Any]:
    """The span of one activity attempt, current while its code runs (the code's own spans
    nest under it), parented by the workflow task that scheduled it."""
    if not tracing.enabled():
        yield tracing.NO_SPAN
        return
    with tracing.span(
        f"activity {claim.activity_name}",
        parent=claim.options.get(TRACE_OPTION),
        kind="consumer",
        attributes=tracing.attributes_of(claim, task_id=claim.task_id),
    ) as span:
        yield span


def workflow_tasks_abandoned(spans: Iterable[Any], exc: BaseException) -> None:
    """End the spans of workflow tasks given up unrecorded (their leases expire)."""
    for span in spans:
        tracing.record_error(span, exc)
        tracing.finish(span, outcome="abandoned")


def read_due_work() -> dict[str, dict[str, Any]]:
    """The due work no worker holds, by kind ("workflow_task", "activity"), for the metrics
    (`Metrics.watch_due_work`): read on the scraping thread, whose connection is closed
    after, so that no connection idles (or goes stale) between scrapes."""
    try:
        due = due_work()
    finally:
        connections.close_all()
    return {"workflow_task": due["workflow_tasks"], "activity": due["activities"]}
