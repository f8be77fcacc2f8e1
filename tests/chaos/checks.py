"""What must hold once the chaos is over, read from the engine's tables and the ledger."""

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Q

from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from tests.testapp.chaos import expected_result
from tests.testapp.models import ChaosEffect

TRANSACTIONAL = "testapp.chaos_transactional"
SELF_KILLING = "testapp.chaos_exit"
FAILS_FIRST = {SELF_KILLING, "testapp.chaos_flaky"}  # their first attempt fails on purpose
EXIT_AFTER = 0.2  # seconds chaos_exit's first attempt runs before it exits


@dataclass
class Verdict:
    """Figures of a run and every broken promise found, one line each."""

    workflows: int = 0
    children: int = 0
    activity_runs: int = 0
    planned_failures: int = 0  # first attempts of chaos_flaky and chaos_exit
    cut_off_runs: int = 0  # other runs whose attempt did not complete: allowed to repeat
    neighbours_at_exits: int = 0  # runs that went on in a worker whose other process exited
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    neighbour_charged: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            *self.stuck,
            *self.lost,
            *self.duplicated,
            *self.neighbour_charged,
            *self.history,
            *self.leftovers,
        ]


def family(parent_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    children = WorkflowExecution.objects.filter(parent_id__in=parent_ids)
    return [*parent_ids, *children.values_list("pk", flat=True)]


def unfinished(parent_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(
        WorkflowExecution.objects.filter(pk__in=family(parent_ids))
        .exclude(status__in=ExecutionStatus.TERMINAL)
        .values_list("pk", flat=True)
    )


def describe(execution_id: uuid.UUID) -> str:
    """An execution as a person debugging it wants to see it: status, pending work, history."""
    execution = WorkflowExecution.objects.get(pk=execution_id)
    lines = [
        f"{execution.workflow_name} {execution.pk} {execution.status} input={execution.input} "
        f"wake_at={execution.wake_at} lease={execution.lease_owner or '-'} "
        f"error={(execution.error or {}).get('message')}"
    ]
    for task in ActivityTask.objects.filter(execution=execution).exclude(
        status=ActivityStatus.COMPLETED, delivered=True
    ):
        lines.append(
            f"    activity #{task.command_seq} {task.activity_name} {task.status} "
            f"attempt={task.attempt} delivered={task.delivered} lease={task.lease_owner or '-'} "
            f"until={task.lease_until} due={task.due_at} "
            f"error={(task.error or {}).get('type')}: {(task.error or {}).get('message')}"
        )
    for signal in PendingSignal.objects.filter(execution=execution):
        lines.append(f"    pending signal {signal.name}={signal.payload}")
    latest = HistoryEvent.objects.filter(execution=execution).order_by("-sequence")[:6]
    for event in reversed(latest):
        lines.append(
            f"    history #{event.sequence} {event.kind} {event.name} #{event.command_seq}"
        )
    return "\n".join(lines)


def read_runs(runs_dir: Path) -> dict[tuple[str, int], list[dict]]:
    """The run files, by command (execution id, command seq)."""
    runs = defaultdict(list)
    for path in runs_dir.glob("*.json"):
        record = json.loads(path.read_text())
        runs[record["execution_id"], record["command_seq"]].append(record)
    return runs


def verify(workload: dict[int, tuple[float, bool]], started: dict[int, uuid.UUID], runs_dir: Path):
    verdict = Verdict(workflows=len(workload))
    parents = list(started.values())
    ids = family(parents)
    verdict.children = len(ids) - len(parents)
    _check_executions(verdict, workload, started, ids)
    _check_activities(verdict, ids, read_runs(runs_dir))
    _check_history(verdict, ids)
    _check_leftovers(verdict, ids)
    return verdict


def _check_executions(verdict, workload, started, ids) -> None:
    for n in sorted(set(workload) - set(started)):
        verdict.lost.append(f"workflow {n} was never started")
    rows = {row.pk: row for row in WorkflowExecution.objects.filter(pk__in=ids)}
    for execution_id in ids:
        if rows[execution_id].status not in ExecutionStatus.TERMINAL:
            verdict.stuck.append(describe(execution_id))
    for n, execution_id in sorted(started.items()):
        row = rows.get(execution_id)
        if row is None:
            verdict.lost.append(f"workflow {n}: execution {execution_id} vanished")
        elif row.status in ExecutionStatus.TERMINAL and row.status != ExecutionStatus.COMPLETED:
            verdict.lost.append(f"workflow {n} ended {row.status}:\n{describe(execution_id)}")
        elif row.status == ExecutionStatus.COMPLETED and row.result != expected_result(
            n, *workload[n]
        ):
            verdict.lost.append(
                f"workflow {n} ({execution_id}) completed with {row.result}, "
                f"expected {expected_result(n, *workload[n])}"
            )
    for row in rows.values():
        if row.parent_id and row.status in ExecutionStatus.TERMINAL:
            if row.status != ExecutionStatus.COMPLETED:
                verdict.lost.append(f"child ended {row.status}:\n{describe(row.pk)}")


def _check_activities(verdict, ids, runs) -> None:
    """No completed activity executed again: runs of a command other than the one whose
    result was recorded are allowed only for earlier attempts, which did not complete."""
    tasks = ActivityTask.objects.filter(execution_id__in=ids)
    completions = Counter(
        HistoryEvent.objects.filter(
            execution_id__in=ids, kind=EventKind.ACTIVITY_COMPLETED
        ).values_list("execution_id", "command_seq")
    )
    effects = defaultdict(list)
    for effect in ChaosEffect.objects.filter(execution_id__in=ids):
        effects[str(effect.execution_id), effect.command_seq].append(effect)
    verdict.activity_runs = sum(len(r) for r in runs.values())
    for task in tasks:
        key = (str(task.execution_id), task.command_seq)
        where = f"{task.activity_name} #{task.command_seq} of {task.execution_id}"
        cmd_runs, cmd_effects = runs.get(key, []), effects.get(key, [])
        error_type = (task.error or {}).get("type") or ""
        died = [r for r in cmd_runs if (r["previous_error"] or "").endswith("ActivityProcessDied")]
        if task.activity_name != SELF_KILLING and (died or error_type.endswith("ProcessDied")):
            verdict.neighbour_charged.append(
                f"{where}: an attempt was charged ActivityProcessDied although its own process "
                f"did not exit (runs: {_attempts(cmd_runs)})"
            )
        if task.status != ActivityStatus.COMPLETED:
            continue  # reported with its execution, as stuck or lost
        recorded = (task.result or {}).get("run")
        events = completions[task.execution_id, task.command_seq]
        if events != 1:
            verdict.duplicated.append(f"{where}: {events} activity_completed events")
        # The same attempt run twice, or a later one: nothing in this workload (no timeouts,
        # no cancellations) gives an attempt back, so either is a re-execution.
        again = [r for r in cmd_runs if r["run"] != recorded and r["attempt"] >= task.attempt]
        if again:
            verdict.duplicated.append(
                f"{where} completed by attempt {task.attempt} (run {recorded}, recorded at "
                f"{task.finished_at.timestamp():.3f}) and executed again: {_attempts(again)}"
            )
        if recorded not in {r["run"] for r in cmd_runs}:
            verdict.duplicated.append(f"{where}: its recorded run {recorded} left no run file")
        if sum(1 for e in cmd_effects if e.run == recorded) != 1:
            verdict.duplicated.append(f"{where}: its recorded run {recorded} left no effect")
        if task.activity_name == TRANSACTIONAL and len(cmd_effects) != 1:
            verdict.duplicated.append(
                f"{where}: transactional, but {len(cmd_effects)} effects were committed "
                f"(attempts {[e.attempt for e in cmd_effects]})"
            )
        planned = sum(
            1 for r in cmd_runs if r["attempt"] == 1 and task.activity_name in FAILS_FIRST
        )
        verdict.planned_failures += planned
        verdict.cut_off_runs += len(cmd_runs) - 1 - len(again) - planned
    verdict.neighbours_at_exits = _neighbours_at_exits(runs, effects)


def _neighbours_at_exits(runs, effects) -> int:
    """Runs that were going on in the same worker when a chaos_exit process exited, and
    finished their work: G12 had something to prove."""
    flat = [r for cmd_runs in runs.values() for r in cmd_runs]
    finished = {e.run: e.created_at.timestamp() for es in effects.values() for e in es}
    exits = [r for r in flat if r["activity"] == SELF_KILLING and r["attempt"] == 1]
    count = 0
    for exit_run in exits:
        at = exit_run["started"] + EXIT_AFTER
        count += sum(
            1
            for r in flat
            if r["worker_pid"] == exit_run["worker_pid"]
            and r["started"] < at < finished.get(r["run"], 0)
        )
    return count


def _attempts(runs: list[dict]) -> str:
    return ", ".join(
        f"attempt {r['attempt']} pid {r['pid']} at {r['started']:.3f}"
        f" (previous error {r['previous_error']})"
        for r in sorted(runs, key=lambda r: r["started"])
    )


def _check_history(verdict, ids) -> None:
    sequences = defaultdict(list)
    for execution_id, sequence in HistoryEvent.objects.filter(execution_id__in=ids).values_list(
        "execution_id", "sequence"
    ):
        sequences[execution_id].append(sequence)
    for execution_id in ids:
        found = sorted(sequences[execution_id])
        if found != list(range(1, len(found) + 1)):
            verdict.history.append(f"history of {execution_id} is not 1..{len(found)}: {found}")


def _check_leftovers(verdict, ids) -> None:
    for task in ActivityTask.objects.filter(
        Q(status=ActivityStatus.RUNNING) | ~Q(lease_owner=""), execution_id__in=ids
    ):
        verdict.leftovers.append(
            f"activity {task.activity_name} #{task.command_seq} of {task.execution_id} left "
            f"{task.status} with lease {task.lease_owner or '-'} until {task.lease_until}"
        )
    for execution in WorkflowExecution.objects.filter(pk__in=ids).exclude(lease_owner=""):
        verdict.leftovers.append(
            f"execution {execution.pk} ({execution.status}) left leased to "
            f"{execution.lease_owner} until {execution.lease_until}"
        )
    for signal in PendingSignal.objects.filter(execution_id__in=ids):
        verdict.leftovers.append(f"signal {signal.name} to {signal.execution_id} never consumed")
