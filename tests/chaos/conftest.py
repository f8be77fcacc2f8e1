"""Three real workers that the chaos suite kills, stops and restarts, slot by slot."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import ROOT, WorkerProcess

WORKER_ARGS = ("--procs", "2", "--batch", "10", "--grace", "10")
STOP_SECONDS = 40.0  # a SIGTERM'd worker must exit by then: its --grace plus a margin
CRASH_LOOP = 5  # workers that exit by themselves before the run is given up


class ChaosWorker(WorkerProcess):
    """A worker the cluster may also stop gracefully, with a deadline to have exited by."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(list(WORKER_ARGS), env, log_path)
        self.stop_deadline: float | None = None  # set once SIGTERM was sent

    def terminate(self) -> None:
        """SIGTERM the worker alone, as a service manager does: a graceful stop."""
        self.process.send_signal(signal.SIGTERM)
        self.stop_deadline = time.monotonic() + STOP_SECONDS

    def close(self) -> None:
        self.stop()


class WorkerCluster:
    """`size` worker slots; a slot's worker is replaced as soon as it is killed or stops.

    Anything a worker does that it should not (exit on its own, exit non-zero or late after
    SIGTERM) is noted in `findings`, and the slot gets a fresh worker so the load goes on.
    """

    def __init__(self, env: dict[str, str], log_dir: Path, size: int = 3) -> None:
        self.env = env
        self.log_dir = log_dir
        self.slots: list[ChaosWorker] = []
        self.retired: list[ChaosWorker] = []
        self.findings: list[str] = []
        self.unexpected_exits = 0
        for slot in range(size):
            self.slots.append(self._spawn(slot))

    def _spawn(self, slot: int) -> ChaosWorker:
        generation = sum(1 for p in self.log_dir.glob(f"worker{slot}-*.log"))
        return ChaosWorker(self.env, self.log_dir / f"worker{slot}-{generation}.log")

    def _replace(self, slot: int) -> None:
        old = self.slots[slot]
        old.close()
        self.retired.append(old)
        self.slots[slot] = self._spawn(slot)

    def kill9(self, slot: int) -> None:
        self.slots[slot].kill_group()
        self._replace(slot)

    def sigterm(self, slot: int) -> bool:
        """SIGTERM the slot's worker; False if it is already stopping."""
        worker = self.slots[slot]
        if worker.stop_deadline is not None:
            return False
        worker.terminate()
        return True

    def poll(self) -> None:
        """Replace workers that stopped (after SIGTERM or not); note what was wrong."""
        for slot, worker in enumerate(self.slots):
            code = worker.process.poll()
            if worker.stop_deadline is None:
                if code is not None:
                    self.unexpected_exits += 1
                    self.findings.append(
                        f"worker {worker.pid} ({worker.log_path.name}) exited by itself "
                        f"with code {code}"
                    )
                    self._replace(slot)
            elif code is not None:
                if code != 0:
                    self.findings.append(
                        f"worker {worker.pid} ({worker.log_path.name}) exited with code {code} "
                        f"after SIGTERM, not 0"
                    )
                self._replace(slot)
            elif time.monotonic() > worker.stop_deadline:
                self.findings.append(
                    f"worker {worker.pid} ({worker.log_path.name}) did not exit within "
                    f"{STOP_SECONDS:g} s of SIGTERM"
                )
                self._replace(slot)

    @property
    def crash_looping(self) -> bool:
        """Workers keep dying by themselves: going on would only repeat it."""
        return self.unexpected_exits >= CRASH_LOOP

    def stop(self) -> None:
        """SIGTERM every worker and wait for each to exit 0 (a final graceful stop)."""
        for worker in self.slots:
            if worker.stop_deadline is None:
                worker.terminate()
        for worker in self.slots:
            try:
                left = max(0.0, worker.stop_deadline - time.monotonic())
                code = worker.process.wait(timeout=left)
            except subprocess.TimeoutExpired:
                self.findings.append(f"worker {worker.pid} did not stop on SIGTERM at the end")
                continue
            if code != 0:
                self.findings.append(f"worker {worker.pid} exited with code {code} at the end")

    def close(self) -> None:
        for worker in [*self.slots, *self.retired]:
            worker.close()

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("worker*.log"))


@pytest.fixture
def chaos_dir(tmp_path) -> Path:
    (tmp_path / "runs").mkdir()
    return tmp_path


@pytest.fixture
def cluster(transactional_db, chaos_dir):
    """Three workers against the test database, sharing the run-file directory."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DURABLE_CHAOS_DIR": str(chaos_dir),
    }
    workers = WorkerCluster(env, chaos_dir)
    yield workers
    workers.close()
    connection.close()
