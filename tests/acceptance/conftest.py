"""Real worker processes, started as a user would, against the test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from django_durable.models import WorkflowExecution

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "durable_worker", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, children included
        )

    @property
    def pid(self):
        return self.process.pid

    def output(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def kill_group(self) -> None:
        """kill -9 the worker's whole process group: the worker and its activity processes."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill_group()
        else:
            try:  # activity processes may outlive a worker that exited
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


@pytest.fixture
def worker_env(transactional_db):
    """What a worker process needs on top of the environment at the time it starts."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(worker_env, tmp_path):
    workers = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(
            list(args) or ["--procs", "2"],
            {**os.environ, **worker_env},
            tmp_path / f"worker{len(workers)}.log",
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    connection.close()


def wait_until(predicate, timeout: float, interval: float = 0.02, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s")


def status_of(execution_id) -> str:
    return WorkflowExecution.objects.values_list("status", flat=True).get(pk=execution_id)
