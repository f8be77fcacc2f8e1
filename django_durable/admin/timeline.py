"""An execution's history as a paginated timeline: each command beside its outcome, with the
time between them. Three queries per page, whatever the history's length."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..constants import EventKind
from ..models import HistoryEvent, WorkflowExecution
from .display import error_summary, execution_link, pretty_json, seconds_text, short_json

EVENTS_PER_PAGE = 100


@dataclass
class TimelineRow:
    event: HistoryEvent
    details: str
    # For a command: how long its outcome took (or that it is still awaited); for an
    # outcome: how long after its command it came.
    took: str = ""
    partner: int | None = None  # the sequence number of the event it pairs with


@dataclass
class Timeline:
    rows: list[TimelineRow]
    page: int
    pages: int
    total: int
    page_numbers: list[int] = field(default_factory=list)


# Moments the engine stores as epoch seconds (workflow time, a timer's fire time).
EPOCH_KEYS = ("time", "fire_at")


def _readable(data: dict) -> dict:
    """`data` with its epoch-second moments written as UTC times."""
    shown = dict(data)
    for key in EPOCH_KEYS:
        if isinstance(shown.get(key), int | float):
            moment = datetime.fromtimestamp(shown[key], tz=UTC)
            shown[key] = moment.isoformat(timespec="milliseconds")
    return shown


def _details(event: HistoryEvent) -> str:
    data = _readable(event.data or {})
    parts: list[str] = []
    if "execution_id" in data:
        parts.append(str(execution_link(data["execution_id"], f"child {data['execution_id']}")))
    error = data.get("error")
    if isinstance(error, dict):
        parts.append(format_html("<strong>{}</strong>", error_summary(error)))
    rest = {key: value for key, value in data.items() if key not in ("execution_id", "error")}
    if rest:
        line = short_json(rest)
        if line.endswith("…") or isinstance(error, dict):
            parts.append(
                format_html("<details><summary>{}</summary>{}</details>", line, pretty_json(data))
            )
        else:
            parts.append(format_html("<code>{}</code>", line))
    elif isinstance(error, dict):
        parts.append(
            format_html("<details><summary>traceback</summary>{}</details>", pretty_json(error))
        )
    return mark_safe(" ".join(parts))


def _is_command(event: HistoryEvent) -> bool:
    return event.kind in EventKind.COMMANDS and event.kind != EventKind.MARKER_RECORDED


def _is_outcome(event: HistoryEvent) -> bool:
    return event.kind in EventKind.INPUTS and event.command_seq is not None


def _pair(rows: list[TimelineRow], partners: list[HistoryEvent], ended: bool) -> None:
    """Fill `took` and `partner` from the commands and outcomes on this page and beyond."""
    commands: dict[int, HistoryEvent] = {}
    outcomes: dict[int, HistoryEvent] = {}
    for event in [row.event for row in rows] + partners:
        if _is_command(event):
            commands[event.command_seq] = event
        elif _is_outcome(event):
            outcomes[event.command_seq] = event
    for row in rows:
        event = row.event
        if _is_command(event):
            outcome = outcomes.get(event.command_seq)
            if outcome is not None:
                took = (outcome.created_at - event.created_at).total_seconds()
                row.took = f"→ {seconds_text(max(0.0, took))}"
                row.partner = outcome.sequence
            elif not ended:
                row.took = "awaited"
        elif _is_outcome(event):
            command = commands.get(event.command_seq)
            if command is not None:
                took = (event.created_at - command.created_at).total_seconds()
                row.took = f"{seconds_text(max(0.0, took))} after #{command.sequence}"
                row.partner = command.sequence


def build_timeline(execution: WorkflowExecution, page: int) -> Timeline:
    """Page `page` (from 1, clamped) of `execution`'s history."""
    events = HistoryEvent.objects.filter(execution=execution).order_by("sequence")
    total = events.count()
    pages = max(1, -(-total // EVENTS_PER_PAGE))
    page = min(max(1, page), pages)
    first = (page - 1) * EVENTS_PER_PAGE
    shown = list(events[first : first + EVENTS_PER_PAGE])
    rows = [TimelineRow(event, _details(event)) for event in shown]
    wanted = {e.command_seq for e in shown if _is_command(e) or _is_outcome(e)}
    partners: list[HistoryEvent] = []
    if wanted and shown:
        partners = list(
            events.filter(command_seq__in=wanted).exclude(
                sequence__gte=shown[0].sequence, sequence__lte=shown[-1].sequence
            )
        )
    _pair(rows, partners, ended=execution.is_terminal)
    numbers = sorted(
        {1, max(1, page - 2), page, min(pages, page + 2), pages}
        | set(range(max(1, page - 2), min(pages, page + 2) + 1))
    )
    return Timeline(rows, page, pages, total, numbers)
