"""Shape sqlite: the embedded default (SQLite, `--tick 0.2`), one-activity workflows/s.

On SQLite it is this run's `one` figure when `one` ran (else `one` runs); on PostgreSQL the
benchmark runs itself on a scratch SQLite file in a child process, `migrate` first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection

from ..session import Session
from ..worker_process import MANAGE_PY
from .throughput import one

TICK = 0.2


def sqlite(session: Session) -> dict:
    config = session.config
    if connection.vendor == "sqlite":
        figures = session.figures.get("one") or one(session)
        return {
            "workflows_per_s": figures["workflows_per_s"],
            "workflows": figures["workflows"],
            "mode": figures["mode"],
            "tick": config.tick,
            "source": "this run's one shape",
        }
    with tempfile.TemporaryDirectory(prefix="durable_bench_sqlite_") as scratch:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["SQLITE_PATH"] = str(Path(scratch) / "bench.sqlite3")
        _run([sys.executable, str(MANAGE_PY), "migrate", "-v", "0"], env, "migrate")
        argv = [sys.executable, str(MANAGE_PY), "durable_bench", "--shape", "one", "--json"]
        argv += ["--no-pgbench", "--mode", config.mode, "--tick", str(TICK)]
        argv += ["--workflows", str(config.sizes["workflows"]), "--stall", str(config.stall)]
        argv += ["--workers", str(config.workers), "--procs", str(config.procs)]
        argv += ["--batch", str(config.batch)]
        session.progress.note(f"  child run on {env['SQLITE_PATH']}")
        child = json.loads(_run(argv, env, "the SQLite run"))
    figures = child["shapes"]["one"]
    return {
        "workflows_per_s": figures["workflows_per_s"],
        "workflows": figures["workflows"],
        "mode": figures["mode"],
        "tick": TICK,
        "source": "a child run on a scratch SQLite file",
    }


def _run(argv: list[str], env: dict, what: str) -> str:
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=None, text=True)
    if done.returncode != 0:
        raise CommandError(f"{what} failed (exit code {done.returncode}): {done.stdout[-500:]}")
    return done.stdout
