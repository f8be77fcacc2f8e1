"""The benchmark's phases, run against a live worker: warm-up, throughput, latency."""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.core.management.base import CommandError
from django.db.models import Max
from django.utils import timezone

from django_durable import send_signal, start_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import ActivityTask, WorkflowExecution

THROUGHPUT_WORKFLOW = "bench.one_activity"
LATENCY_WORKFLOW = "bench.wait_for_signal"
# A phase fails when nothing it waits for has moved for this many seconds.
STALL_SECONDS = 60.0


@dataclass
class Throughput:
    workflows: int
    start_seconds: float
    wall_seconds: float

    @property
    def starts_per_second(self) -> float:
        return self.workflows / self.start_seconds

    @property
    def workflows_per_second(self) -> float:
        return self.workflows / self.wall_seconds


@dataclass
class Latency:
    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)


def delete_bench_executions() -> int:
    """Delete every execution of a `bench.*` workflow (history and tasks cascade)."""
    _, per_model = WorkflowExecution.objects.filter(workflow_name__startswith="bench.").delete()
    return per_model.get(WorkflowExecution._meta.label, 0)


def _wait_for(
    progress: Callable[[], int], target: int, what: str, check: Callable[[], None], poll: float
) -> None:
    """Poll `progress()` until it reaches `target`; fail if it stalls for STALL_SECONDS."""
    last, last_change = -1, time.monotonic()
    while True:
        value = progress()
        if value >= target:
            return
        if value != last:
            last, last_change = value, time.monotonic()
        elif time.monotonic() - last_change > STALL_SECONDS:
            raise CommandError(f"{what}: stuck at {value} of {target} for {STALL_SECONDS:.0f} s.")
        check()
        time.sleep(poll)


def _ended(ids: list[uuid.UUID] | None, name: str) -> int:
    rows = WorkflowExecution.objects.filter(workflow_name=name, status__in=ExecutionStatus.TERMINAL)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    return rows.count()


def warm_up(count: int, check: Callable[[], None]) -> None:
    """Run `count` one-activity workflows to their end (the worker's processes start), then
    delete them."""
    ids = [start_workflow(THROUGHPUT_WORKFLOW, i=-1 - n) for n in range(count)]
    _wait_for(lambda: _ended(ids, THROUGHPUT_WORKFLOW), count, "Warm-up", check, 0.05)
    rows = WorkflowExecution.objects.filter(pk__in=ids)
    execution = rows.exclude(status=ExecutionStatus.COMPLETED).first()
    if execution is not None:
        raise CommandError(f"Warm-up workflow ended {execution.status}: {execution.error}")
    rows.delete()


def measure_throughput(workflows: int, check: Callable[[], None]) -> Throughput:
    """Start `workflows` one-activity workflows, wait until all have ended, verify them."""
    first_start = timezone.now()
    began = time.perf_counter()
    ids = [start_workflow(THROUGHPUT_WORKFLOW, i=i) for i in range(workflows)]
    start_seconds = time.perf_counter() - began
    _wait_for(lambda: _ended(None, THROUGHPUT_WORKFLOW), workflows, "Throughput", check, 0.05)
    executions = WorkflowExecution.objects.filter(workflow_name=THROUGHPUT_WORKFLOW)
    last_finish = executions.aggregate(at=Max("finished_at"))["at"]
    _verify_throughput(ids)
    return Throughput(
        workflows=workflows,
        start_seconds=start_seconds,
        wall_seconds=(last_finish - first_start).total_seconds(),
    )


def _verify_throughput(ids: list[uuid.UUID]) -> None:
    """Every execution completed with its own input as result, through one activity attempt."""
    expected = {pk: i for i, pk in enumerate(ids)}
    rows = WorkflowExecution.objects.filter(workflow_name=THROUGHPUT_WORKFLOW)
    problems = []
    seen = 0
    for pk, status, result in rows.values_list("pk", "status", "result"):
        seen += 1
        if status != ExecutionStatus.COMPLETED or result != expected.get(pk):
            problems.append(f"{pk}: {status}, result {result!r}, expected {expected.get(pk)!r}")
    if seen != len(ids):
        problems.append(f"{seen} executions found, {len(ids)} started")
    tasks = ActivityTask.objects.filter(execution__workflow_name=THROUGHPUT_WORKFLOW)
    per_execution = Counter(tasks.values_list("execution_id", flat=True))
    attempts = Counter(tasks.values_list("attempt", flat=True))
    several = [pk for pk, count in per_execution.items() if count != 1]
    if several or len(per_execution) != len(ids):
        problems.append(
            f"{len(per_execution)} executions have activity tasks, {len(several)} more than one"
        )
    if set(attempts) != {1}:
        problems.append(f"activity attempts {dict(sorted(attempts.items()))} (all should be 1)")
    if problems:
        listed = "\n  ".join(problems[:20])
        raise CommandError(f"Throughput check failed ({len(problems)} problems):\n  {listed}")


def _suspended(execution_id: uuid.UUID) -> bool:
    """Its first workflow task is recorded and it waits for input (no wake-up due)."""
    return WorkflowExecution.objects.filter(
        pk=execution_id,
        status=ExecutionStatus.RUNNING,
        wake_at__isnull=True,
        history__kind=EventKind.WORKFLOW_TASK_STARTED,
    ).exists()


def _signal_round_trip(n: int, check: Callable[[], None]) -> float:
    """One sample in ms: from just before `send_signal` to the execution's `finished_at`."""
    execution_id = start_workflow(LATENCY_WORKFLOW)
    _wait_for(lambda: int(_suspended(execution_id)), 1, "Latency (suspend)", check, 0.01)
    t0 = timezone.now()
    send_signal(execution_id, "go", n)
    _wait_for(lambda: _ended([execution_id], LATENCY_WORKFLOW), 1, "Latency", check, 0.01)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    if execution.status != ExecutionStatus.COMPLETED or execution.result != n:
        raise CommandError(
            f"Latency workflow {execution_id} ended {execution.status} with "
            f"{execution.result!r}, expected {n}: {execution.error}"
        )
    return (execution.finished_at - t0).total_seconds() * 1000


def measure_latency(samples: int, check: Callable[[], None]) -> Latency:
    """Signal-to-resume latency of `samples` workflows, one after the other."""
    return Latency([_signal_round_trip(n, check) for n in range(samples)])
