"""How the console shows values: status badges, JSON, durations and links to executions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

# Colours that read on the admin's light and dark themes alike (white text on each).
STATUS_COLOURS = {
    "running": "#1f6feb",
    "blocked": "#bf5700",
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "canceled": "#6e7781",
    "timed_out": "#8250df",
    "queued": "#57606a",
    "alive": "#1a7f37",
    "stale": "#cf222e",
    "stopped": "#6e7781",
}


def status_badge(status: str, label: str | None = None) -> str:
    """A coloured badge whose class names the status, so tests and styles can find it."""
    return format_html(
        '<span class="durable-status durable-status-{}" style="background:{}">{}</span>',
        status,
        STATUS_COLOURS.get(status, "#57606a"),
        label or status.replace("_", " "),
    )


def pretty_json(value: Any) -> str:
    """`value` indented in a <pre>, or an empty string for None."""
    if value is None:
        return ""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="durable-json">{}</pre>', text)


def short_json(value: Any, limit: int = 120) -> str:
    """`value` on one line, cut at `limit` characters: for a table cell."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seconds_text(seconds: float) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def moment_text(moment: datetime | None) -> str:
    """A moment in the current time zone, to the second, narrow enough for a list column."""
    if moment is None:
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(start: datetime | None, end: datetime | None) -> str:
    """Time from `start` to `end`, or to now (marked "so far") when it has not ended."""
    if start is None:
        return ""
    if end is None:
        return f"{seconds_text(max(0.0, (timezone.now() - start).total_seconds()))} so far"
    return seconds_text(max(timedelta(0), end - start).total_seconds())


def execution_link(execution_id: Any, text: str | None = None) -> str:
    """A link to an execution's page, showing the first part of its id unless told."""
    if execution_id is None:
        return ""
    url = reverse("admin:django_durable_workflowexecution_change", args=[execution_id])
    return format_html('<a href="{}">{}</a>', url, text or str(execution_id)[:8])


def error_summary(error: dict | None) -> str:
    """`Type: message` of a stored error, for a table cell."""
    if not error:
        return ""
    kind = str(error.get("type", "")).rsplit(".", 1)[-1]
    message = str(error.get("message", ""))
    text = f"{kind}: {message}" if kind else message
    return text if len(text) <= 160 else text[:159] + "…"
