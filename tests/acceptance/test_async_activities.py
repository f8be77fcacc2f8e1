"""The activity processes run many `async def` attempts at once, each stoppable alone, and
never beside a `def` attempt: `ActivityPool` driven directly, with real spawned children."""

import asyncio
import itertools
import os
import time
import uuid

import pytest
from django.utils import timezone

from django_durable.engine import pool as pool_module
from django_durable.engine.pool import ActivityPool, AttemptStopped, ProcessLost
from django_durable.store import ActivityClaim

# The pool touches no database: one environment (SQLite's) runs these for both.
pytestmark = pytest.mark.skipif(
    os.environ.get("DURABLE_TEST_DB") == "postgres", reason="run by the SQLite environment"
)

_task_ids = itertools.count(1)


def claim(name: str, *args) -> ActivityClaim:
    task_id = next(_task_ids)
    now = timezone.now()
    return ActivityClaim(
        task_id=task_id,
        execution_id=uuid.uuid4(),
        command_seq=task_id,
        activity_name=f"testapp.{name}",
        args=list(args),
        kwargs={},
        attempt=1,
        owner="tests",
        options={},
        heartbeat_details=None,
        scheduled_at=now,
        started_at=now,
    )


async def started_pool(processes: int, async_per_process: int | None = None) -> ActivityPool:
    pool = ActivityPool(processes, async_per_process)
    pool.start()
    deadline = time.monotonic() + 60
    while pool.room(is_async=False) < processes:  # every child has set Django up
        assert time.monotonic() < deadline, "the activity processes did not start"
        await asyncio.sleep(0.05)
    return pool


@pytest.fixture
async def pools():
    started = []

    async def start(processes: int, async_per_process: int | None = None) -> ActivityPool:
        pool = await started_pool(processes, async_per_process)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.kill()


def most_at_once(reports: list[dict]) -> int:
    """The most intervals [start, end) that overlapped at one moment."""
    edges = sorted([(r["start"], 1) for r in reports] + [(r["end"], -1) for r in reports])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_async_attempts_run_together_in_each_process(pools):
    pool = await pools(2)
    claims = [claim("async_nap", 0.5) for _ in range(200)]
    outcomes = await asyncio.gather(*(pool.run((c.task_id, 1), c) for c in claims))
    reports = [outcome["result"] for outcome in outcomes]
    assert [r["key"] for r in reports] == [c.idempotency_key for c in claims]
    assert len({r["pid"] for r in reports}) <= 2
    assert most_at_once(reports) > 50
    assert pool.started == 2


async def test_def_attempts_never_share_a_process_with_async_ones(pools):
    pool = await pools(2, async_per_process=20)
    claims = []
    for i in range(60):
        claims.append(claim("async_nap", 0.2))
        if i % 10 == 0:
            claims.append(claim("sync_nap", 0.2))
    outcomes = await asyncio.gather(*(pool.run((c.task_id, 1), c) for c in claims))
    reports = [outcome["result"] for outcome in outcomes]
    kinds = [c.activity_name for c in claims]
    synced = [r for kind, r in zip(kinds, reports, strict=True) if kind == "testapp.sync_nap"]
    awaited = [r for kind, r in zip(kinds, reports, strict=True) if kind != "testapp.sync_nap"]
    assert len(synced) == 6 and all(r["beside"] == 0 for r in synced)
    for alone in synced:
        same_process = [r for r in awaited if r["pid"] == alone["pid"]]
        assert all(r["end"] <= alone["start"] or r["start"] >= alone["end"] for r in same_process)
    assert max(r["beside"] for r in awaited) > 0  # async ones did run side by side


async def test_async_attempts_pack_and_leave_idle_processes_to_def_attempts(pools):
    pool = await pools(2, async_per_process=3)
    assert (pool.room(is_async=False), pool.room(is_async=True)) == (2, 6)
    first = [claim("async_nap", 1.0) for _ in range(2)]
    runs = [asyncio.ensure_future(pool.submit((c.task_id, 1), c)) for c in first]
    assert pool.pid_of((first[0].task_id, 1)) == pool.pid_of((first[1].task_id, 1))
    assert (pool.room(is_async=False), pool.room(is_async=True)) == (1, 4)
    alone = claim("sync_nap", 0.1)
    runs.append(asyncio.ensure_future(pool.submit((alone.task_id, 1), alone)))
    assert pool.pid_of((alone.task_id, 1)) not in (None, pool.pid_of((first[0].task_id, 1)))
    assert (pool.room(is_async=False), pool.room(is_async=True)) == (0, 1)
    await asyncio.gather(*runs)


async def test_a_waiting_def_attempt_drains_a_process_of_async_ones(pools):
    pool = await pools(2, async_per_process=3)
    naps = [claim("async_nap", 1.0) for _ in range(5)]  # three in one process, two in the other
    runs = [asyncio.ensure_future(pool.submit((c.task_id, 1), c)) for c in naps]
    pids = [pool.pid_of((c.task_id, 1)) for c in naps]
    assert len(set(pids)) == 2 and pool.room(is_async=True) == 1
    alone = claim("sync_nap", 0.1)
    waits = asyncio.ensure_future(pool.submit((alone.task_id, 1), alone))
    assert pool.pid_of((alone.task_id, 1)) is None and pool.room(is_async=False) == 0
    # The process with two takes no more async attempts, so that the `def` one gets it.
    assert pool.room(is_async=True) == 0
    late = claim("async_nap", 0.1)
    runs.append(asyncio.ensure_future(pool.submit((late.task_id, 1), late)))
    assert pool.pid_of((late.task_id, 1)) is None
    report = (await waits)["result"]
    assert report["beside"] == 0 and report["pid"] == pids[-1]
    await asyncio.gather(*runs)


async def test_stopping_one_async_attempt_cancels_only_it(pools):
    pool = await pools(1)
    doomed, neighbour = claim("async_nap", 30), claim("async_nap", 1.0)
    doomed_run = asyncio.ensure_future(pool.run((doomed.task_id, 1), doomed))
    neighbour_run = asyncio.ensure_future(pool.run((neighbour.task_id, 1), neighbour))
    await until(lambda: pool.pid_of((neighbour.task_id, 1)) is not None)
    pid = pool.pid_of((doomed.task_id, 1))
    await asyncio.sleep(0.2)  # both have begun
    assert pool.stop((doomed.task_id, 1)) is True
    assert pool.stop((doomed.task_id, 1)) is False  # being stopped already
    with pytest.raises(AttemptStopped) as stopped:
        await doomed_run
    assert (stopped.value.exitcode, stopped.value.collateral) == (None, False)
    assert (await neighbour_run)["result"]["pid"] == pid
    after = claim("async_nap", 0)
    assert (await pool.run((after.task_id, 1), after))["result"]["pid"] == pid
    assert pool.started == 1


async def test_a_blocking_async_attempt_is_killed_and_its_neighbours_lost_as_collateral(
    pools, monkeypatch
):
    monkeypatch.setattr(pool_module, "STOP_GRACE_SECONDS", 0.5)
    pool = await pools(2)
    neighbours = [claim("async_nap", 30) for _ in range(2)]
    runs = [asyncio.ensure_future(pool.run((c.task_id, 1), c)) for c in neighbours]
    blocker = claim("async_blocks", 30)
    blocked = asyncio.ensure_future(pool.run((blocker.task_id, 1), blocker))
    bystander = claim("sync_nap", 1.0)  # in the other process
    alone = asyncio.ensure_future(pool.run((bystander.task_id, 1), bystander))
    await until(lambda: pool.pid_of((bystander.task_id, 1)) is not None)
    await asyncio.sleep(0.5)  # the blocker has begun blocking its loop
    assert pool.pid_of((blocker.task_id, 1)) == pool.pid_of((neighbours[0].task_id, 1))
    assert pool.stop((blocker.task_id, 1))
    with pytest.raises(ProcessLost) as lost:
        await blocked
    assert not isinstance(lost.value, AttemptStopped)
    assert (lost.value.exitcode, lost.value.collateral) == (-9, False)
    for run in runs:
        with pytest.raises(ProcessLost) as lost:
            await run
        assert (lost.value.exitcode, lost.value.collateral) == (-9, True)
    assert (await alone)["result"]["beside"] == 0
    await until(lambda: pool.room(is_async=False) == 2)  # a replacement started
    assert pool.started == 3


async def test_a_process_that_dies_of_one_async_attempt_cannot_say_which(pools):
    pool = await pools(1)
    neighbours = [claim("async_nap", 30) for _ in range(2)]
    culprit = claim("async_exits", 0.3)
    runs = [asyncio.ensure_future(pool.run((c.task_id, 1), c)) for c in [*neighbours, culprit]]
    for run in runs:
        with pytest.raises(ProcessLost) as lost:
            await run
        assert (lost.value.exitcode, lost.value.collateral) == (3, False)


async def test_each_concurrent_async_attempt_sees_its_own_info(pools):
    pool = await pools(2)
    claims = [claim("async_whoami", 0.2) for _ in range(50)]
    outcomes = await asyncio.gather(*(pool.run((c.task_id, 1), c) for c in claims))
    for c, outcome in zip(claims, outcomes, strict=True):
        assert outcome["result"] == {"before": c.idempotency_key, "after": c.idempotency_key}


async def test_an_attempt_waiting_for_room_can_be_stopped(pools):
    pool = await pools(1)
    busy = claim("sync_nap", 1.0)
    running = asyncio.ensure_future(pool.submit((busy.task_id, 1), busy))
    waiting = claim("sync_nap", 0)
    queued = asyncio.ensure_future(pool.submit((waiting.task_id, 1), waiting))
    assert pool.pid_of((waiting.task_id, 1)) is None
    assert pool.stop((waiting.task_id, 1))
    with pytest.raises(AttemptStopped):
        await queued
    assert (await running)["result"]["beside"] == 0
