"""One benchmark run's shared state: options, progress, statistics, workers and starts."""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime

from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from django_durable import ExecutionFinished, cancel_workflow, start_workflow, start_workflows
from django_durable.constants import ExecutionStatus
from django_durable.management.progress import Progress
from django_durable.models import WorkflowExecution

from .checks import check_results
from .options import BenchConfig
from .pgstats import PgStats
from .waiting import wait_for
from .worker_process import WorkerGroup

PAUSE_TRIES = 100
READY_SECONDS = 120.0
STOP_SECONDS = 60.0
WARM_UP = "bench.one_activity"


def sqlite_writable() -> bool:
    """True unless the database is SQLite and another connection holds its write lock (a
    short `BEGIN IMMEDIATE` on a connection of our own, rolled back: nothing is written)."""
    if connection.vendor != "sqlite":
        return True
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.2, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


class Session:
    def __init__(self, config: BenchConfig, progress: Progress) -> None:
        self.config = config
        self.progress = progress
        self.pg = PgStats()
        self.figures: dict[str, dict] = {}  # shape -> its figures, as they are measured

    # -- executions ------------------------------------------------------------------------

    def executions(self, workflow: str, since: datetime):
        """The executions of `workflow` started by this run's shape that began at `since`."""
        return WorkflowExecution.objects.filter(workflow_name=workflow, created_at__gte=since)

    def ended_count(self, workflow: str, since: datetime) -> int:
        return self.executions(workflow, since).filter(status__in=ExecutionStatus.TERMINAL).count()

    def start_many(self, workflow: str, inputs: list[dict]) -> tuple[list[uuid.UUID], float]:
        """Start one execution per input in one bulk start; ids and seconds taken."""
        began = time.perf_counter()
        ids = start_workflows(workflow, inputs)
        return ids, time.perf_counter() - began

    def start_one_by_one(self, workflow: str, inputs: list[dict]) -> tuple[list, float]:
        began = time.perf_counter()
        ids = [start_workflow(workflow, **one) for one in inputs]
        return ids, time.perf_counter() - began

    def wait_ended(self, group: WorkerGroup, workflow: str, since: datetime, total: int) -> None:
        wait_for(
            lambda: self.ended_count(workflow, since),
            total,
            f"{workflow} ended",
            check=group.check_alive,
            progress=self.progress,
            stall_seconds=self.config.stall,
        )

    def cancel_leftovers(self) -> int:
        """Cancel bench executions an earlier, interrupted run left running: the workers of
        this run would otherwise spend time on them."""
        running = WorkflowExecution.objects.filter(
            workflow_name__startswith="bench.", status=ExecutionStatus.RUNNING
        ).values_list("pk", flat=True)
        canceled = 0
        for pk in running.iterator():
            try:
                cancel_workflow(pk, "left over by an interrupted durable_bench run")
                canceled += 1
            except ExecutionFinished:
                pass
        return canceled

    # -- workers ---------------------------------------------------------------------------

    @contextmanager
    def workers(self):
        """`--workers` fresh workers, registered and warmed up (activity processes started,
        leftovers ended); stopped at the end, killed (with their logs shown) on an error."""
        config = self.config
        group = WorkerGroup(
            config.workers, procs=config.procs, batch=config.batch, tick=config.tick
        )
        try:
            group.start(READY_SECONDS)
            self._warm_up(group)
            yield group
            group.stop(STOP_SECONDS)
        except BaseException:
            group.kill()
            sys.stderr.write(group.log_tails() + "\n")
            raise

    def _warm_up(self, group: WorkerGroup) -> None:
        since = timezone.now()
        count = self.config.procs * self.config.workers
        ids = [start_workflow(WARM_UP, i=-1 - n) for n in range(count)]
        self.wait_ended(group, WARM_UP, since, count)
        rows = self.executions(WARM_UP, since).values("pk", "status", "result", "error")
        check_results("Warm-up", list(rows), {pk: -1 - n for n, pk in enumerate(ids)})
        leftovers = WorkflowExecution.objects.filter(
            workflow_name__startswith="bench.", status=ExecutionStatus.RUNNING
        )
        wait_for(
            lambda: -leftovers.count(),
            0,
            "Leftover bench executions ended",
            check=group.check_alive,
            progress=None,
            stall_seconds=self.config.stall,
        )

    def pause(self, group: WorkerGroup) -> None:
        """SIGSTOP the workers at a moment none of them holds SQLite's write lock: a worker
        stopped inside a write transaction would lock the benchmark's starts out."""
        for _ in range(PAUSE_TRIES):
            group.pause()
            if sqlite_writable():
                return
            group.resume()
            time.sleep(0.05)
        raise CommandError(
            f"Could not pause the workers outside a SQLite write in {PAUSE_TRIES} tries."
        )

    def quiet(self, group: WorkerGroup) -> None:
        """Pause the workers; on PostgreSQL wait until their backends have flushed their
        statistics (an idle backend keeps them up to 10 s)."""
        self.pause(group)
        if self.pg.available and self.config.settle:
            self.progress.note(f"  settling {self.config.settle:g} s (PostgreSQL statistics)")
            time.sleep(self.config.settle)
