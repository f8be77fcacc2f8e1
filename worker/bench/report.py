"""The report: the issue's table, from the figures, as text and as one JSON document."""

from __future__ import annotations

import os
import platform

import django
from django.db import connection


def environment() -> dict:
    """What the figures depend on besides the code."""
    if connection.vendor == "sqlite":
        version = connection.Database.sqlite_version
    else:
        connection.ensure_connection()
        number = getattr(connection, "pg_version", 0) or 0
        version = f"{number // 10000}.{number % 10000}"
    return {
        "database": connection.vendor,
        "database_version": version,
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def _get(figures: dict, *path: str):
    for key in path:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


def table(report: dict) -> dict:
    """The issue's rows, by a short key; None where the shape did not run or has no such
    figure (e.g. PostgreSQL counts on SQLite)."""
    s = report["shapes"]
    return {
        "one_workflows_per_s": _get(s, "one", "workflows_per_s"),
        "ten_workflows_per_s": _get(s, "ten", "workflows_per_s"),
        "single_median_ms": _get(s, "single", "median_ms"),
        "signal_p50_ms": _get(s, "signal", "p50"),
        "signal_p99_ms": _get(s, "signal", "p99"),
        "pg_transactions_per_one_activity_workflow": _get(s, "one", "pg_transactions_per_workflow"),
        "starts_one_by_one_per_s": _get(s, "starts", "one_by_one_per_s"),
        "starts_bulk_per_s": _get(s, "starts", "bulk_per_s"),
        "fanout_async_seconds": _get(s, "fanout", "async", "wall_seconds"),
        "steps_first_ms": _get(s, "steps", "first_steps_ms"),
        "steps_last_ms": _get(s, "steps", "last_steps_ms"),
        "sleepers_worker_rss_mb": _get(s, "sleepers", "worker_rss_mb"),
        "sleepers_late_p50_ms": _get(s, "sleepers", "late_ms", "p50"),
        "sleepers_late_p99_ms": _get(s, "sleepers", "late_ms", "p99"),
        "idle_pg_transactions_per_10s": _get(s, "idle", "pg_transactions_per_10s"),
        "sqlite_one_workflows_per_s": _get(s, "sqlite", "workflows_per_s"),
    }


def _show(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:g}{unit}" if isinstance(value, int | float) else str(value)


def text(report: dict) -> str:
    """The table as the issue words it, pgbench's commit rates beside it."""
    env, t, s, bench = report["environment"], report["table"], report["shapes"], report["pgbench"]
    sizes, mode = report["options"]["sizes"], report["options"]["mode"]
    late = f"{_show(t['sleepers_late_p50_ms'], ' ms')} / {_show(t['sleepers_late_p99_ms'], ' ms')}"
    yardstick = (
        f"pgbench one-row INSERT: {_show(bench.get('clients_1_tps'))} tps with 1 client, "
        f"{_show(bench.get('clients_4_tps'))} with 4"
        if "skipped" not in bench
        else f"pgbench: skipped ({bench['skipped']})"
    )
    one_rate = _show(t["one_workflows_per_s"])
    rows = [
        (f"one-activity workflows/s ({mode} of {sizes['workflows']})", one_rate),
        (f"ten-activity workflows/s ({mode} of {sizes['ten']})", _show(t["ten_workflows_per_s"])),
        ("one workflow start to finish, idle system, median", _show(t["single_median_ms"], " ms")),
        (
            "signal to resume, p50 / p99",
            f"{_show(t['signal_p50_ms'], ' ms')} / {_show(t['signal_p99_ms'], ' ms')}",
        ),
        (
            "PostgreSQL transactions per one-activity workflow under load",
            _show(t["pg_transactions_per_one_activity_workflow"]),
        ),
        (
            f"start_workflow one by one ({sizes['starts']}) / bulk start of {sizes['bulk_starts']}",
            f"{_show(t['starts_one_by_one_per_s'], '/s')} / {_show(t['starts_bulk_per_s'], '/s')}",
        ),
        (
            f"fan-out: {sizes['fanout']} async activities of "
            f"{report['options'].get('fanout_seconds', 1):g} s I/O, start to finish",
            _show(t["fanout_async_seconds"], " s"),
        ),
        (
            f"{sizes['steps']}-step workflow: ms per step, first / last "
            f"{_show(_get(s, 'steps', 'compared_steps'))}",
            f"{_show(t['steps_first_ms'])} / {_show(t['steps_last_ms'])}",
        ),
        (
            f"{sizes['sleepers']} workflows asleep: worker RSS; wake late by p50 / p99",
            f"{_show(t['sleepers_worker_rss_mb'], ' MB')}; {late}",
        ),
        ("idle worker: transactions per 10 s", _show(t["idle_pg_transactions_per_10s"])),
        (
            "SQLite (embedded default, --tick 0.2), one-activity workflows/s",
            _show(t["sqlite_one_workflows_per_s"]),
        ),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [
        "",
        "django-durable benchmark",
        f"  database  {env['database']} {env['database_version']}; Python {env['python']}, "
        f"Django {env['django']}; {env['cpu_count']} CPUs, {env['platform']}",
        f"  options   {report['options']['command_line']}",
        f"  yardstick {yardstick}",
        "",
    ]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append("")
    return "\n".join(lines)
