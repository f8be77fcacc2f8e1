"""The faults the chaos suite injects, on a schedule drawn from a seeded random generator."""

import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.db import InterfaceError, OperationalError, connection

from django_durable.constants import ActivityStatus
from django_durable.models import ActivityTask, Worker

from .conftest import WorkerCluster

KILL9 = "kill -9 worker"
SIGTERM = "SIGTERM worker"
LISTEN = "LISTEN connection terminated"
PG_RESTART = "PostgreSQL restarted"
EXIT = "activity os._exit"  # injected by the workload itself (chaos_exit's first attempt)


@dataclass(frozen=True)
class ChaosConfig:
    """The size of a run: its workload, how it is started, which faults and how many."""

    name: str
    workflows: int
    waves: int  # workflows are started in this many waves...
    wave_every: float  # ...this many seconds apart
    faults: dict[str, int]  # kind -> how many, spread over `fault_window`
    fault_window: tuple[float, float]  # seconds after the first start
    crash_share: float  # share of workflows whose chaos_exit activity kills its process
    settle: float  # seconds allowed after the last start and fault for all to end


@dataclass(order=True)
class Fault:
    at: float
    kind: str = field(compare=False)
    slot: int = field(compare=False)
    tries: int = field(default=0, compare=False)


def plan_faults(config: ChaosConfig, rng: random.Random, slots: int) -> list[Fault]:
    start, end = config.fault_window
    faults = [
        Fault(rng.uniform(start, end), kind, rng.randrange(slots))
        for kind, count in sorted(config.faults.items())
        for _ in range(count)
    ]
    return sorted(faults)


def retrying(fn, *args, timeout: float = 120.0):
    """Call a database function, riding out a restarting PostgreSQL (the test's own
    connection breaks with it: close it and try again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*args)
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            connection.close()
            time.sleep(0.5)


def listener_backend(worker_pid: int) -> int | None:
    """The server pid of a worker's LISTEN connection, from pg_stat_activity (the listener
    names its connection after the worker's pid)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            [f"django_durable listener {worker_pid}"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def worker_running(pid: int) -> bool:
    """Whether the worker process `pid` has registered itself (its signal handlers are set)."""
    return Worker.objects.filter(pid=pid, stopped_at__isnull=True).exists()


def holds_activities(pid: int) -> bool:
    """Whether the worker process `pid` runs an activity now (its id holds its pid)."""
    return ActivityTask.objects.filter(
        status=ActivityStatus.RUNNING, lease_owner__contains=f"-{pid}-"
    ).exists()


def terminate_backend(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        return bool(cursor.fetchone()[0])


def restart_postgres() -> None:
    """Restart the local cluster (the long run only): every connection breaks at once."""
    [version] = [p.name for p in Path("/etc/postgresql").iterdir() if p.name[0].isdigit()][:1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    connection.close()


class Injector:
    """Applies due faults to the cluster; `injected` counts what actually happened."""

    def __init__(self, cluster: WorkerCluster, plan: list[Fault]) -> None:
        self.cluster = cluster
        self.pending = list(plan)
        self.injected: Counter = Counter()
        self.missed: Counter = Counter()
        self.log: list[str] = []

    @property
    def done(self) -> bool:
        return not self.pending

    def inject_due(self, elapsed: float) -> None:
        while self.pending and self.pending[0].at <= elapsed:
            fault = self.pending.pop(0)
            if self._inject(fault):
                self.injected[fault.kind] += 1
                self.log.append(f"{elapsed:7.1f}s {fault.kind} (slot {fault.slot})")
            elif fault.tries < 40:  # e.g. the worker's listener is not connected yet
                fault.tries += 1
                fault.at = elapsed + 0.25
                self.pending = sorted([*self.pending, fault])
            else:
                self.missed[fault.kind] += 1

    def _inject(self, fault: Fault) -> bool:
        worker = self.cluster.slots[fault.slot]
        # A worker's death or stop proves more when it cuts off work: wait up to 2 s for the
        # worker to hold a running activity, then strike anyway.
        busy = fault.kind in (KILL9, SIGTERM) and (
            fault.tries >= 8 or retrying(holds_activities, worker.pid)
        )
        if fault.kind == KILL9:
            if busy:
                self.cluster.kill9(fault.slot)
            return busy
        if fault.kind == SIGTERM:
            # Only once the worker runs: before it installs its handlers, SIGTERM's default
            # action ends it (there is nothing to stop gracefully yet).
            return (
                busy and retrying(worker_running, worker.pid) and self.cluster.sigterm(fault.slot)
            )
        if fault.kind == LISTEN:
            if worker.stop_deadline is not None:
                return False
            backend = retrying(listener_backend, worker.pid)
            return backend is not None and retrying(terminate_backend, backend)
        if fault.kind == PG_RESTART:
            restart_postgres()
            return True
        raise ValueError(f"unknown fault {fault.kind!r}")
