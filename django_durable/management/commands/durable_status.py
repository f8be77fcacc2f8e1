"""`manage.py durable_status`: what an on-call person asks first (how many executions of each
workflow in each status, which workers are alive, how late the oldest due work is, what no
worker can run, what is parked), as text or one JSON document, with an exit status that a
liveness or alerting probe can use."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from django_durable.constants import ExecutionStatus
from django_durable.store import status_report

from ._cli import check_amount

DEFAULT_MAX_LAG = 300.0  # seconds the oldest due work may wait before the exit status is 1
MAX_LIMIT = 1000
JSON_SCHEMA = 1  # bumped if a key of the JSON document changes meaning or goes away
KINDS = {"workflow_tasks": "workflow tasks", "activities": "activities"}
ONE_OF_KIND = {"workflow_tasks": "workflow task", "activities": "activity"}


class Command(BaseCommand):
    help = (
        "Show executions by status and workflow, the workers, the oldest due but unclaimed "
        "work and its lag, work no live worker can run, and parked executions. Exits with "
        "status 1 when the oldest due work has waited longer than --max-lag seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON document (see docs/cli.md)."
        )
        parser.add_argument(
            "--max-lag",
            type=float,
            default=DEFAULT_MAX_LAG,
            metavar="SECONDS",
            help=(
                "Exit with status 1 (after the report) when the oldest due work has waited "
                f"longer than this. Default {DEFAULT_MAX_LAG:g}."
            ),
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=10,
            metavar="N",
            help=f"Workers and parked executions listed, 1 to {MAX_LIMIT}. Default 10.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_lag = options["max_lag"]
        check_amount(max_lag, "--max-lag", "seconds")
        if not 1 <= options["limit"] <= MAX_LIMIT:
            raise CommandError(f"--limit must be from 1 to {MAX_LIMIT}, not {options['limit']}.")
        try:
            report = status_report(limit=options["limit"])
        except DatabaseError as exc:  # a probe must say why in one line, not a traceback
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
            raise CommandError(
                f"Cannot read the engine's tables ({first_line}): is the database up and "
                "migrated (manage.py migrate)?"
            ) from None
        late = oldest_due(report)
        lag = {
            "oldest_seconds": late["lag_seconds"] if late else None,
            "max_seconds": max_lag,
            "exceeded": bool(late) and late["lag_seconds"] > max_lag,
        }
        if options["json"]:
            self.stdout.write(as_json(report, lag))
        else:
            self.stdout.write(as_text(report))
        if lag["exceeded"]:
            raise CommandError(
                f"The oldest due work ({late['kind']} {late['name']}) has waited "
                f"{late['lag_seconds']:.1f} s, over --max-lag {max_lag:g} s."
            )


def oldest_due(report: dict[str, Any]) -> dict[str, Any] | None:
    """The oldest due work of any kind, with its `kind` ("workflow task" or "activity")."""
    found = [
        {**summary["oldest"], "kind": ONE_OF_KIND[kind]}
        for kind, summary in report["due"].items()
        if summary["oldest"] is not None
    ]
    return max(found, key=lambda oldest: oldest["lag_seconds"], default=None)


# -- JSON ----------------------------------------------------------------------------------


def as_json(report: dict[str, Any], lag: dict[str, Any]) -> str:
    """The report as one JSON document; its keys are documented in docs/cli.md."""
    document = {
        "schema": JSON_SCHEMA,
        "now": report["now"],
        "executions": report["executions"],
        "executions_total": totals(report["executions"]),
        "workers": report["workers"],
        "due": report["due"],
        "lag": lag,
        "unrunnable": report["unrunnable"],
        "parked": report["parked"],
    }
    return json.dumps(document, indent=2, sort_keys=True, default=json_value)


def json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def totals(executions: dict[str, dict[str, int]]) -> dict[str, int]:
    statuses = [value for value, _ in ExecutionStatus.CHOICES]
    return {s: sum(by_status[s] for by_status in executions.values()) for s in statuses}


# -- text ----------------------------------------------------------------------------------


def as_text(report: dict[str, Any]) -> str:
    now = report["now"]
    sections = [
        f"django-durable status at {moment(now)}",
        executions_text(report["executions"]),
        workers_text(report["workers"], now),
        due_text(report["due"]),
        unrunnable_text(report["unrunnable"], now),
        parked_text(report["parked"]),
    ]
    return "\n\n".join(sections)


def executions_text(executions: dict[str, dict[str, int]]) -> str:
    if not executions:
        return "Executions: none."
    statuses = [value for value, _ in ExecutionStatus.CHOICES]
    rows = [[name, *map(str, by_status.values())] for name, by_status in executions.items()]
    rows.append(["total", *map(str, totals(executions).values())])
    right = range(1, len(statuses) + 1)
    return "Executions\n" + table(["workflow", *statuses], rows, right=right)


def workers_text(workers: dict[str, Any], now: datetime) -> str:
    heading = (
        f"Workers: {workers['alive']} alive, {workers['stale']} stale, "
        f"{workers['stopped']} stopped."
    )
    if not workers["listed"]:
        return heading
    rows = [
        [
            worker["state"],
            worker["id"],
            worker["hostname"],
            str(worker["pid"]),
            f"{moment(worker['heartbeat_at'])} ({ago(now, worker['heartbeat_at'])})",
        ]
        for worker in workers["listed"]
    ]
    listed = table(["state", "id", "host", "pid", "last heartbeat"], rows, right={3})
    shown = len(workers["listed"])
    everyone = workers["alive"] + workers["stale"] + workers["stopped"]
    more = f"\n  ... and {everyone - shown} more." if everyone > shown else ""
    return f"{heading}\n{listed}{more}"


def due_text(due: dict[str, dict[str, Any]]) -> str:
    lines = ["Due work no worker has claimed"]
    for kind, label in KINDS.items():
        summary = due[kind]
        oldest = summary["oldest"]
        if oldest is None:
            lines.append(f"  {label}: none due.")
            continue
        count = f"{summary['count']}{'+' if summary['count_capped'] else ''}"
        lines.append(
            f"  {label}: {count} due; oldest {oldest['name']} (execution "
            f"{oldest['execution_id']}), lag {oldest['lag_seconds']:.1f} s."
        )
    return "\n".join(lines)


def unrunnable_text(unrunnable: dict[str, dict[str, dict[str, Any]]], now: datetime) -> str:
    lines = []
    for name, work in unrunnable["workflows"].items():
        lines.append(
            f"  workflow {name}: {work['count']} due, the oldest for "
            f"{ago(now, work['oldest_due_at'], suffix='')}."
        )
    for name, work in unrunnable["activities"].items():
        lines.append(
            f"  activity {name} (queue {', '.join(work['queues'])}): {work['count']} due, "
            f"the oldest for {ago(now, work['oldest_due_at'], suffix='')}."
        )
    if not lines:
        return "Work no live worker can run: none."
    return "Work no live worker can run (its code is on no live worker)\n" + "\n".join(lines)


def parked_text(parked: dict[str, Any]) -> str:
    if not parked["count"]:
        return "Parked executions: none."
    rows = [
        [
            str(row["execution_id"]),
            row["workflow_name"],
            moment(row["created_at"]),
            f"{row['error_type']}: {row['message']}" if row["error_type"] else row["message"],
        ]
        for row in parked["listed"]
    ]
    listed = table(["execution", "workflow", "started", "reason"], rows)
    rest = parked["count"] - len(parked["listed"])
    more = f"\n  ... and {rest} more." if rest > 0 else ""
    return f"Parked executions: {parked['count']}\n{listed}{more}"


def table(headers: list[str], rows: list[list[str]], *, right: Collection[int] = ()) -> str:
    """Columns padded to their widest cell; those numbered in `right` align right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  " + "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [headers, *rows])


def moment(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def ago(now: datetime, then: datetime, *, suffix: str = " ago") -> str:
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.1f} s{suffix}"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min{suffix}"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h{suffix}"
    return f"{seconds / 86400:.1f} days{suffix}"
