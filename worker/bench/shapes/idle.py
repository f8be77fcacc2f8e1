"""Shape idle: what a worker with nothing to do costs the database and the CPU."""

from __future__ import annotations

import time

from ..figures import rate
from ..pgstats import Window
from ..session import Session

PER = 10.0  # the figure is given per 10 s


def idle(session: Session) -> dict:
    config = session.config
    window = Window(session.pg)
    with session.workers() as group:
        if session.pg.available and config.settle:  # the warm-up's counts flush meanwhile
            session.progress.note(f"  settling {config.settle:g} s (PostgreSQL statistics)")
            time.sleep(config.settle)
        with window.measuring():
            before = group.usage()
            session.progress.note(f"  watching the idle worker(s) for {config.idle_seconds:g} s")
            time.sleep(config.idle_seconds)
            after = group.usage()
            session.quiet(group)
        group.resume()
    scale = PER / config.idle_seconds
    transactions = window.per(1)["transactions"]
    statements = window.per(1)["statements"]
    return {
        "seconds": config.idle_seconds,
        "pg_transactions_per_10s": None if transactions is None else round(transactions * scale, 1),
        "pg_statements_per_10s": None if statements is None else round(statements * scale, 1),
        "worker_cpu_seconds_per_10s": round((after.cpu_seconds - before.cpu_seconds) * scale, 3),
        "cpu_share": rate(after.cpu_seconds - before.cpu_seconds, config.idle_seconds),
        "worker_rss_mb": round(after.worker_rss_mb, 1),
    }
