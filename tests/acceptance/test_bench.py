"""Smoke test of `manage.py durable_bench`: every shape at tiny sizes, as a user runs it.

It runs the worker project's command as a subprocess on a scratch database (a SQLite file,
and with DURABLE_TEST_DB=postgres also a fresh PostgreSQL database created and dropped
here) and checks only that it exits 0 and reports every figure: never a time.
"""

import json
import os
import subprocess
import sys
import uuid
from urllib.parse import urlparse

import pytest

from tests.processes import ROOT

MANAGE_PY = ROOT / "worker" / "manage.py"
TINY = [
    "--workflows", "3", "--ten", "2", "--single-samples", "2", "--signal-samples", "2",
    "--starts", "3", "--bulk-starts", "5", "--fanout", "5", "--fanout-seconds", "0.1",
    "--steps", "5", "--sleepers", "3", "--sleep-seconds", "3", "--idle-seconds", "1",
    "--settle", "0", "--procs", "1", "--pgbench-seconds", "1", "--stall", "30", "--json",
]  # fmt: skip
POSTGRES_ONLY = {"pg_transactions_per_one_activity_workflow", "idle_pg_transactions_per_10s"}


def _project_env(**extra: str) -> dict[str, str]:
    """The environment the worker project needs: its own settings, not the tests'."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    env.update(DJANGO_SETTINGS_MODULE="durable_service.settings", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _manage(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _bench(env: dict[str, str]) -> dict:
    _manage(env, "migrate", "-v", "0", timeout=120)
    return json.loads(_manage(env, "durable_bench", *TINY, timeout=300).stdout)


def _assert_every_figure(report: dict, postgres: bool) -> None:
    assert set(report["shapes"]) == {
        "starts", "one", "ten", "single", "signal", "fanout", "steps", "sleepers", "idle",
        "sqlite",
    }  # fmt: skip
    assert set(report["shapes"]["fanout"]) == {"async", "sync"}
    for key, value in report["table"].items():
        if key in POSTGRES_ONLY and not postgres:
            assert value is None, key
        else:
            assert value is not None, key
    for figures in (report["shapes"]["one"], report["shapes"]["ten"]):
        for key in ("workflows_per_s", "activities_per_s", "worker_cpu_seconds_per_1000_workflows"):
            assert figures[key] is not None, key
        assert set(figures["start_to_finish_ms"]) == {"p50", "p95", "p99", "max"}
    if postgres:
        assert {"clients_1_tps", "clients_4_tps"} <= set(report["pgbench"]), report["pgbench"]
    else:
        assert "skipped" in report["pgbench"]


@pytest.mark.skipif(
    os.environ.get("DURABLE_TEST_DB") == "postgres", reason="run by the SQLite environment"
)
def test_bench_on_sqlite(tmp_path):
    report = _bench(_project_env(SQLITE_PATH=str(tmp_path / "bench.sqlite3")))
    assert report["environment"]["database"] == "sqlite"
    _assert_every_figure(report, postgres=False)


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for the run, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    base = urlparse(
        os.environ.get("DURABLE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    )
    name = f"durable_bench_test_{uuid.uuid4().hex[:8]}"
    server = base._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(
    os.environ.get("DURABLE_TEST_DB") != "postgres", reason="DURABLE_TEST_DB=postgres only"
)
def test_bench_on_postgres(postgres_url, tmp_path):
    report = _bench(_project_env(DATABASE_URL=postgres_url, TMPDIR=str(tmp_path)))
    assert report["environment"]["database"] == "postgresql"
    _assert_every_figure(report, postgres=True)
