"""Runs the chosen shapes one after the other, each with fresh workers, into one report."""

from __future__ import annotations

import time

from django_durable.management.progress import Progress

from .options import BenchConfig
from .pgbench import run_pgbench
from .report import environment, table
from .session import Session
from .shapes import RUNNERS


def run(config: BenchConfig, progress: Progress, command_line: str) -> dict:
    """Every figure of the chosen shapes, checked; raises CommandError on a wrong result."""
    session = Session(config, progress)
    canceled = session.cancel_leftovers()
    if canceled:
        progress.note(f"Canceled {canceled} bench execution(s) left by an earlier run.")
    report = {
        "environment": environment(),
        "options": {
            **config.argv,
            "fanout_seconds": config.fanout_seconds,
            "command_line": command_line,
        },
    }
    if config.pgbench:
        progress.note(f"== pgbench ({config.pgbench_seconds} s per client count)")
        report["pgbench"] = run_pgbench(config.pgbench_seconds)
    else:
        report["pgbench"] = {"skipped": "not asked for (--pgbench)"}
    report["pg_stat_statements"] = session.pg.statements_available
    began = time.monotonic()
    for name in config.shapes:
        progress.note(f"== {name}")
        session.figures[name] = RUNNERS[name](session)
    report["shapes"] = session.figures
    report["table"] = table(report)
    report["seconds"] = round(time.monotonic() - began, 1)
    return report
