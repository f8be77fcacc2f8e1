"""Real worker processes, started as a user would, against the test database."""

import os
import time

import pytest
from django.db import connection

from django_durable.models import WorkflowExecution
from tests.processes import ROOT, WorkerProcess


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

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        """Start `durable_worker args` (default `--procs 2`); `env` adds to its environment."""
        worker = WorkerProcess(
            list(args) or ["--procs", "2"],
            {**os.environ, **worker_env, **(env or {})},
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
