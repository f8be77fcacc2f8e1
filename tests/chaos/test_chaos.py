"""Chaos: three workers on PostgreSQL under a mixed load, killed, stopped and cut off.

The short run is part of the suite; `DURABLE_CHAOS=long` runs the long one instead (500
workflows, PostgreSQL restarted mid-load). `DURABLE_CHAOS_SEED=<n>` replays a run's plan:
the same workload and the same faults at the same moments (the moments land on whatever
the workers are doing then, so a replay is close, not identical).
"""

import functools
import json
import os
import random
import time
import uuid
from collections import Counter

import pytest
from django.db import InterfaceError, OperationalError, connection

from django_durable import DurableError, send_signal, start_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from tests.testapp.chaos import SIGNAL, signal_payload
from tests.testapp.models import ChaosEffect

from .checks import unfinished, verify
from .faults import (
    EXIT,
    KILL9,
    LISTEN,
    PG_RESTART,
    SIGTERM,
    ChaosConfig,
    Injector,
    listener_backend,
    plan_faults,
    retrying,
)

MODE = os.environ.get("DURABLE_CHAOS", "short")

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="the chaos suite needs PostgreSQL (LISTEN/NOTIFY, row locks, a server to restart)",
    ),
]

SHORT = ChaosConfig(
    name="short",
    workflows=60,
    waves=6,
    wave_every=5.0,
    faults={KILL9: 4, SIGTERM: 3, LISTEN: 3},
    fault_window=(3.0, 40.0),
    crash_share=0.15,
    settle=240.0,
)
LONG = ChaosConfig(
    name="long",
    workflows=500,
    waves=25,
    wave_every=6.0,
    faults={KILL9: 15, SIGTERM: 8, LISTEN: 10, PG_RESTART: 2},
    fault_window=(5.0, 160.0),
    crash_share=0.12,
    settle=600.0,
)


@pytest.mark.skipif(MODE == "long", reason="DURABLE_CHAOS=long runs the long run instead")
def test_chaos_short(cluster, chaos_dir, capsys):
    run_chaos(SHORT, cluster, chaos_dir, capsys)


@pytest.mark.skipif(MODE != "long", reason="the long chaos run needs DURABLE_CHAOS=long")
def test_chaos_long(cluster, chaos_dir, capsys):
    run_chaos(LONG, cluster, chaos_dir, capsys)


def run_chaos(config: ChaosConfig, cluster, chaos_dir, capsys) -> None:
    seed = int(os.environ.get("DURABLE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    replay = f"DURABLE_CHAOS={config.name} DURABLE_CHAOS_SEED={seed}"
    say = _printer(capsys)
    say(f"chaos [{config.name}] seed {seed} (replay: {replay}); logs in {chaos_dir}")
    rng = random.Random(seed)
    workload = {n: (round(rng.uniform(0.2, 1.0), 2), False) for n in range(config.workflows)}
    for n in rng.sample(sorted(workload), round(config.workflows * config.crash_share)):
        workload[n] = (workload[n][0], True)
    injector = Injector(cluster, plan_faults(config, rng, len(cluster.slots)))

    began = time.monotonic()
    started = _drive(config, seed, workload, cluster, injector, began, say)
    cluster.poll()
    _expect_listeners(cluster)
    verdict = retrying(verify, workload, started, chaos_dir / "runs")
    cluster.stop()
    wall = time.monotonic() - began

    faults = Counter(injector.injected)
    faults[EXIT] = _self_exits(chaos_dir)
    figures = {
        "run": config.name,
        "seed": seed,
        "workflows": verdict.workflows,
        "children": verdict.children,
        "activity_runs": verdict.activity_runs,
        "planned_failures": verdict.planned_failures,
        "cut_off_runs": verdict.cut_off_runs,
        "neighbours_at_exits": verdict.neighbours_at_exits,
        "faults": {kind: faults[kind] for kind in (KILL9, SIGTERM, LISTEN, PG_RESTART, EXIT)},
        "lost": len(verdict.lost),
        "stuck": len(verdict.stuck),
        "duplicated": len(verdict.duplicated),
        "neighbour_charged": len(verdict.neighbour_charged),
        "wall_seconds": round(wall, 1),
    }
    (chaos_dir / "summary.json").write_text(json.dumps(figures, indent=2))
    say(
        f"chaos [{config.name}] seed {seed}: {verdict.workflows} workflows "
        f"(+{verdict.children} children), {verdict.activity_runs} activity runs "
        f"({verdict.planned_failures} failing on purpose, {verdict.cut_off_runs} cut off, "
        f"{verdict.neighbours_at_exits} beside a process that exited); faults: "
        + ", ".join(f"{kind} {count}" for kind, count in figures["faults"].items())
        + f"; lost {figures['lost']}, stuck {figures['stuck']}, "
        f"duplicated {figures['duplicated']}, neighbours charged "
        f"{figures['neighbour_charged']}; {wall:.1f} s"
    )

    problems = [*verdict.problems, *cluster.findings]
    problems += [
        f"fault {kind!r} could not be injected {n} time(s)" for kind, n in injector.missed.items()
    ]
    if problems:
        pytest.fail(_failure_report(replay, problems, injector, cluster), pytrace=False)
    _checks_catch_broken_promises(workload, started, chaos_dir / "runs")


def _checks_catch_broken_promises(workload, started, runs_dir) -> None:
    """The checks passed: break each promise by hand in what the run left, and make sure
    the checks notice every one (a harness that cannot fail proves nothing)."""
    parent = started[0]
    child = WorkflowExecution.objects.get(parent_id=parent).pk
    tx = ActivityTask.objects.get(execution_id=parent, activity_name="testapp.chaos_transactional")
    ChaosEffect.objects.create(  # a transactional effect committed twice
        execution_id=parent, command_seq=tx.command_seq, attempt=tx.attempt, run="x" * 32, name="tx"
    )
    step = ActivityTask.objects.filter(execution_id=child).first()
    template = next(runs_dir.glob(f"{child}_{step.command_seq}_{step.attempt}_*.json"))
    again = {**json.loads(template.read_text()), "run": "y" * 32}  # a completed one run again
    (runs_dir / "again.json").write_text(json.dumps(again))
    charged = {**again, "run": "z" * 32, "attempt": 0, "previous_error": "x.ActivityProcessDied"}
    (runs_dir / "charged.json").write_text(json.dumps(charged))
    HistoryEvent.objects.filter(  # a gap
        execution_id=child, kind=EventKind.WORKFLOW_TASK_STARTED
    ).order_by("sequence").first().delete()
    PendingSignal.objects.create(execution_id=parent, name="left", payload=None)
    WorkflowExecution.objects.filter(pk=started[1]).update(result={"wrong": True})
    WorkflowExecution.objects.filter(pk=started[2]).update(status=ExecutionStatus.RUNNING)
    WorkflowExecution.objects.filter(pk=started[3]).update(lease_owner="gone")

    verdict = verify(workload, started, runs_dir)
    assert (len(verdict.duplicated), len(verdict.neighbour_charged)) == (2, 1), verdict
    assert (len(verdict.history), len(verdict.lost), len(verdict.stuck)) == (1, 1, 1), verdict
    assert len(verdict.leftovers) == 2, verdict


def _drive(config, seed, workload, cluster, injector, began, say) -> dict[int, uuid.UUID]:
    """Start the workload in waves, signal workflows that wait, inject faults on schedule,
    until everything has ended or the deadline passes."""
    per_wave = -(-config.workflows // config.waves)
    last_start = (config.waves - 1) * config.wave_every
    deadline = max(last_start, config.fault_window[1]) + config.settle
    started: dict[int, uuid.UUID] = {}
    signaled: set[int] = set()
    next_check = next_report = 0.0
    while True:
        elapsed = time.monotonic() - began
        wave = min(config.waves, int(elapsed // config.wave_every) + 1)
        for n in range(min(wave * per_wave, config.workflows)):
            if n not in started:
                pause, crash = workload[n]
                start = functools.partial(
                    start_workflow,
                    "testapp.chaos_order",
                    workflow_id=f"chaos-{seed}-{n}",  # a start retried after a lost reply
                    n=n,
                    pause=pause,
                    crash=crash,
                )
                started[n] = retrying(start)
        _send_signals(started, signaled, cluster.findings)
        injector.inject_due(elapsed)
        cluster.poll()
        if elapsed >= next_check and len(started) == config.workflows and injector.done:
            next_check = elapsed + 1.0
            if not retrying(unfinished, list(started.values())):
                return started
        if config.name == "long" and elapsed >= next_report:
            next_report = elapsed + 15.0
            left = len(retrying(unfinished, list(started.values())))
            say(f"  {elapsed:4.0f} s: {len(started)} started, {left} unfinished")
        if elapsed > deadline or cluster.crash_looping:
            return started  # the checks list what is stuck
        time.sleep(0.2)


def _send_signals(started: dict[int, uuid.UUID], signaled: set[int], findings: list[str]) -> None:
    """Signal each workflow once it waits: its step before the wait has been delivered."""
    waiting = {execution_id: n for n, execution_id in started.items() if n not in signaled}
    if not waiting:
        return
    ready = retrying(
        lambda: list(
            ActivityTask.objects.filter(
                activity_name="testapp.chaos_ready", delivered=True, execution_id__in=waiting
            ).values_list("execution_id", flat=True)
        )
    )
    for execution_id in ready:
        n = waiting[execution_id]
        try:
            send_signal(execution_id, SIGNAL, signal_payload(n))
        except (OperationalError, InterfaceError):
            connection.close()  # PostgreSQL restarting: did the signal land before?
            if not retrying(_signal_landed, execution_id):
                continue
        except DurableError as exc:  # the execution ended without its signal
            findings.append(f"could not signal workflow {n} ({execution_id}): {exc!r}")
        signaled.add(n)


def _signal_landed(execution_id: uuid.UUID) -> bool:
    return (
        PendingSignal.objects.filter(execution_id=execution_id, name=SIGNAL).exists()
        or HistoryEvent.objects.filter(
            execution_id=execution_id, kind=EventKind.SIGNAL_RECEIVED, name=SIGNAL
        ).exists()
    )


def _expect_listeners(cluster, timeout: float = 60.0) -> None:
    """Every worker left running listens again (G5: it reconnects after losing LISTEN)."""
    deadline = time.monotonic() + timeout
    for worker in cluster.slots:
        if worker.stop_deadline is not None:
            continue  # stopping on purpose (SIGTERM): it may have closed its LISTEN already
        while retrying(listener_backend, worker.pid) is None:
            if time.monotonic() > deadline:
                cluster.findings.append(f"worker {worker.pid} has no LISTEN connection at the end")
                break
            time.sleep(0.5)


def _self_exits(chaos_dir) -> int:
    """Activity processes that killed themselves: first attempts of chaos_exit that ran."""
    count = 0
    for path in (chaos_dir / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        count += record["activity"] == "testapp.chaos_exit" and record["attempt"] == 1
    return count


def _printer(capsys):
    def say(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    return say


def _failure_report(replay, problems, injector, cluster, limit: int = 25) -> str:
    lines = [f"chaos run broke {len(problems)} promise(s); replay with {replay}", ""]
    lines += problems[:limit]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    lines += ["", "faults injected:", *injector.log, "", "worker logs:"]
    named = " ".join(problems)
    shown = 0
    for path in cluster.logs():
        text = path.read_text(errors="replace").splitlines()
        errors = sum(1 for line in text if "Traceback" in line or "ERROR" in line)
        lines.append(f"  {path} ({len(text)} lines, {errors} with errors)")
        # The logs of workers a problem names, then the first few with errors.
        if path.name in named or (errors and shown < 3):
            shown += path.name not in named
            lines += [f"    {line}" for line in _condensed(text)[-60:]]
    return "\n".join(lines)


def _condensed(text: list[str]) -> list[str]:
    """A log with its tracebacks cut down to the frames of this project's code."""
    kept, skipping = [], False
    for line in text:
        if line.startswith('  File "'):
            skipping = "/django_durable/" not in line and "/tests/" not in line
            if skipping:
                continue
        elif skipping and line.startswith("    "):
            continue  # the source line (and caret line) of a skipped frame
        else:
            skipping = False
        kept.append(line)
    return kept
