"""Shapes single and signal: one workflow at a time on an otherwise idle system."""

from __future__ import annotations

import statistics

from django.core.management.base import CommandError
from django.utils import timezone

from django_durable import send_signal, start_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import WorkflowExecution

from ..figures import distribution_ms
from ..session import Session
from ..waiting import wait_for


def _wait_one(session: Session, group, probe, label: str) -> None:
    wait_for(
        probe,
        1,
        label,
        check=group.check_alive,
        progress=None,
        stall_seconds=session.config.stall,
        poll=0.005,
    )


def _ended(execution_id) -> int:
    return WorkflowExecution.objects.filter(
        pk=execution_id, status__in=ExecutionStatus.TERMINAL
    ).count()


def _finished(execution_id, expected) -> WorkflowExecution:
    execution = WorkflowExecution.objects.get(pk=execution_id)
    if execution.status != ExecutionStatus.COMPLETED or execution.result != expected:
        raise CommandError(
            f"{execution.workflow_name} {execution_id} ended {execution.status} with "
            f"{execution.result!r}, expected {expected!r}: {execution.error}"
        )
    return execution


def single(session: Session) -> dict:
    """One-activity workflows started one at a time, each after the previous one ended:
    start (`created_at`) to finish (`finished_at`)."""
    samples = []
    count = session.config.sizes["single_samples"]
    with session.workers() as group:
        session.progress.task("bench.one_activity one at a time", count)
        for n in range(count):
            execution_id = start_workflow("bench.one_activity", i=n)
            _wait_one(session, group, lambda pk=execution_id: _ended(pk), "single")
            execution = _finished(execution_id, n)
            samples.append((execution.finished_at - execution.created_at).total_seconds())
            session.progress.update(n + 1)
        session.progress.end()
    figures = distribution_ms(samples)
    figures["median_ms"] = round(statistics.median(samples) * 1000, 1)
    figures["samples"] = count
    return figures


def _suspended(execution_id) -> int:
    """1 once its first workflow task is recorded and it waits for input (no wake-up due)."""
    return WorkflowExecution.objects.filter(
        pk=execution_id,
        status=ExecutionStatus.RUNNING,
        wake_at__isnull=True,
        history__kind=EventKind.WORKFLOW_TASK_STARTED,
    ).count()


def signal(session: Session) -> dict:
    """Signal to resume: from just before `send_signal` to the execution's `finished_at`."""
    samples = []
    count = session.config.sizes["signal_samples"]
    with session.workers() as group:
        session.progress.task("bench.wait_for_signal round trips", count)
        for n in range(count):
            execution_id = start_workflow("bench.wait_for_signal")
            _wait_one(session, group, lambda pk=execution_id: _suspended(pk), "signal (suspend)")
            sent = timezone.now()
            send_signal(execution_id, "go", n)
            _wait_one(session, group, lambda pk=execution_id: _ended(pk), "signal (resume)")
            execution = _finished(execution_id, n)
            samples.append((execution.finished_at - sent).total_seconds())
            session.progress.update(n + 1)
        session.progress.end()
    figures = distribution_ms(samples)
    figures["samples"] = count
    return figures
