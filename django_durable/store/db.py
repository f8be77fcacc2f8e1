"""The store's connection to Django: which database, what time it is, and NOTIFY."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections
from django.utils import timezone

from ..conf import durable_setting


def alias() -> str:
    return durable_setting("DATABASE")


def now_or(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def lease_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=durable_setting("LEASE_SECONDS"))


def supports_notify() -> bool:
    return connections[alias()].vendor == "postgresql"


def notify(kind: str, ident: object) -> None:
    """Send a small wake-up hint (kind:id), delivered when the current transaction commits."""
    if not supports_notify():
        return
    with connections[alias()].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [durable_setting("CHANNEL"), f"{kind}:{ident}"])
