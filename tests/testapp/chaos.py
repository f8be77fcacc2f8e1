"""The chaos suite's workload (tests/chaos): workflows and activities that keep a ledger.

Every run of an activity (one execution of its body, whatever attempt it is) leaves two
traces, so the suite can tell afterwards what ran how often:
- a run file in `$DURABLE_CHAOS_DIR/runs/`, written first, outside any transaction, so it
  survives a rolled-back transactional attempt and a PostgreSQL restart;
- a `ChaosEffect` row, the activity's side effect, written last (inside the transaction of
  a transactional activity).
Each run returns its run id with its value: the recorded result names the run that
completed. The workflows strip it, so a workflow's result follows from its input alone
(`expected_result`).
"""

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

from django_durable import RetryPolicy, activity, register

# Crashes, lost leases and a restarted database cost attempts: allow many, retry quickly.
CHAOS_RETRY = RetryPolicy(
    initial_interval=0.2, backoff_coefficient=1.5, maximum_interval=2.0, maximum_attempts=25
)
SIGNAL = "go"


def signal_payload(n: int) -> dict:
    """What the test sends to workflow `n` once it waits for its signal."""
    return {"token": 7 * n}


def expected_result(n: int, pause: float, crash: bool) -> dict:
    """The result `chaos_order(n, pause, crash)` must end with, whatever faults it met."""
    return {
        "n": n,
        "first": f"a-{n}",
        "second": f"b-{n}",
        "flaky": 3 * n,
        "timed_out_wait": None,
        "ready": f"ready-{n}",
        "signal": signal_payload(n),
        "child": [f"c1-{n}", f"c2-{n}"],
        "transactional": 1,
        "crashed": f"x-{n}" if crash else None,
        "beside": f"beside-{n}" if crash else None,
    }


def _start_run() -> tuple[str, activity.ActivityInfo]:
    """Log this run of the current activity (a run file) and return its id."""
    from django_durable.models import ActivityTask

    info = activity.info()
    run = uuid.uuid4().hex
    # The error an earlier attempt of this command left (None on a first attempt): the
    # suite checks that no attempt was charged for another process's death (G12).
    previous = (
        ActivityTask.objects.filter(execution_id=info.execution_id, command_seq=info.command_seq)
        .values_list("error", flat=True)
        .first()
    )
    if directory := os.environ.get("DURABLE_CHAOS_DIR"):
        runs = Path(directory, "runs")
        name = f"{info.execution_id}_{info.command_seq}_{info.attempt}_{run}"
        record = {
            "execution_id": str(info.execution_id),
            "command_seq": info.command_seq,
            "attempt": info.attempt,
            "run": run,
            "activity": info.activity_name,
            "pid": os.getpid(),
            "worker_pid": os.getppid(),
            "started": time.time(),
            "previous_error": (previous or {}).get("type"),
        }
        (runs / f"{name}.tmp").write_text(json.dumps(record))
        os.replace(runs / f"{name}.tmp", runs / f"{name}.json")
    return run, info


def _record_effect(run: str, info: activity.ActivityInfo, name: str) -> None:
    from .models import ChaosEffect

    ChaosEffect.objects.create(
        execution_id=info.execution_id,
        command_seq=info.command_seq,
        attempt=info.attempt,
        run=run,
        name=name,
    )


@register.activity(retry_policy=CHAOS_RETRY)
def chaos_step(n: int, tag: str, seconds: float) -> dict:
    run, info = _start_run()
    time.sleep(seconds)
    _record_effect(run, info, tag)
    return {"value": f"{tag}-{n}", "run": run}


@register.activity(retry_policy=CHAOS_RETRY)
def chaos_ready(n: int) -> dict:
    """The step before the signal wait: once its outcome is delivered, the test signals."""
    run, info = _start_run()
    _record_effect(run, info, "ready")
    return {"value": f"ready-{n}", "run": run}


@register.activity(retry_policy=CHAOS_RETRY)
def chaos_flaky(n: int) -> dict:
    """Fails its first attempt on purpose (a retry), succeeds on the next one."""
    run, info = _start_run()
    if info.attempt == 1:
        raise ConnectionError(f"planned failure of {info.idempotency_key}")
    _record_effect(run, info, "flaky")
    return {"value": 3 * n, "run": run}


@register.activity(retry_policy=CHAOS_RETRY)
def chaos_exit(n: int) -> dict:
    """Kills its own process on its first attempt (after a moment, so a neighbour runs)."""
    run, info = _start_run()
    if info.attempt == 1:
        time.sleep(0.2)
        os._exit(1)
    _record_effect(run, info, "exit")
    return {"value": f"x-{n}", "run": run}


@register.activity(transactional=True, retry_policy=CHAOS_RETRY)
def chaos_transactional(n: int) -> dict:
    """Writes its effect in the transaction that records its completion, and lingers there
    so that kills land mid-way. Returns how many effects its command has: 1, exactly once."""
    from .models import ChaosEffect

    run, info = _start_run()
    _record_effect(run, info, "transactional")
    time.sleep(0.3)
    count = ChaosEffect.objects.filter(
        execution_id=info.execution_id, command_seq=info.command_seq
    ).count()
    return {"value": count, "run": run}


async def _value(awaitable) -> object:
    return (await awaitable)["value"]


@register.workflow()
async def chaos_child(ctx, n: int, pause: float) -> list:
    first = await _value(ctx.run_activity(chaos_step, n, "c1", 0.05))
    await ctx.sleep(pause)
    return [first, await _value(ctx.run_activity(chaos_step, n, "c2", 0.05))]


@register.workflow()
async def chaos_order(ctx, n: int, pause: float, crash: bool) -> dict:
    """Activities (sequential and gathered), a retry, timers, a signal, a child, a
    transactional activity and, when `crash`, an activity that kills its own process
    beside a slower neighbour."""
    first = await _value(ctx.run_activity(chaos_step, n, "a", 0.1))
    second, flaky = await asyncio.gather(
        _value(ctx.run_activity(chaos_step, n, "b", 0.4)),
        _value(ctx.run_activity(chaos_flaky, n)),
    )
    await ctx.sleep(pause)
    timed_out_wait = await ctx.wait_signal("never", timeout=pause)
    ready = await _value(ctx.run_activity(chaos_ready, n))
    signal = await ctx.wait_signal(SIGNAL)
    child = await ctx.run_workflow(chaos_child, n=n, pause=pause)
    transactional = await _value(ctx.run_activity(chaos_transactional, n))
    crashed = beside = None
    if crash:
        crashed, beside = await asyncio.gather(
            _value(ctx.run_activity(chaos_exit, n)),
            _value(ctx.run_activity(chaos_step, n, "beside", 0.8)),
        )
    return {
        "n": n,
        "first": first,
        "second": second,
        "flaky": flaky,
        "timed_out_wait": timed_out_wait,
        "ready": ready,
        "signal": signal,
        "child": child,
        "transactional": transactional,
        "crashed": crashed,
        "beside": beside,
    }
