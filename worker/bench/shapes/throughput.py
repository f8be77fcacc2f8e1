"""Shapes one, ten and fanout: many workflows (or many activities) through the workers."""

from __future__ import annotations

from ..batch import batch_figures, run_batch
from ..session import Session


def one(session: Session) -> dict:
    """One-activity workflows (`--workflows`, drain or live)."""
    return _many(session, "bench.one_activity", "workflows", activities_each=1)


def ten(session: Session) -> dict:
    """Ten-activity workflows, the activities one after the other (`--ten`)."""
    return _many(session, "bench.ten_activities", "ten", activities_each=10)


def _many(session: Session, workflow: str, size: str, *, activities_each: int) -> dict:
    """`sizes[size]` workflows `workflow(i=i)`, each returning its `i`."""
    count, mode = session.config.sizes[size], session.config.mode
    with session.workers() as group:
        batch = run_batch(
            session,
            group,
            workflow,
            [{"i": i} for i in range(count)],
            list(range(count)),
            activities_each=activities_each,
            mode=mode,
        )
    return batch_figures(batch, mode)


def fanout(session: Session) -> dict:
    """One workflow gathering `--fanout` activities at once: async ones that each await
    `--fanout-seconds` of I/O, and sync no-op ones."""
    config = session.config
    n = config.sizes["fanout"]
    figures = {}
    for kind in config.fanout_kinds:
        with session.workers() as group:
            batch = run_batch(
                session,
                group,
                "bench.fan_out",
                [{"n": n, "kind": kind, "seconds": config.fanout_seconds}],
                [n * (n - 1) // 2],
                activities_each=n,
            )
        result = batch_figures(batch, "drain")
        result["activity_seconds"] = config.fanout_seconds if kind == "async" else 0
        figures[kind] = result
    return figures
