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


def tune_sqlite() -> bool:
    """Make the engine's SQLite database safe for a worker and its processes writing at once.

    IMMEDIATE transactions take the write lock when they begin, so a read never has to be
    upgraded to a write under contention (which fails at once with "database is locked");
    WAL lets readers go on during a write; the timeout makes writers wait, not fail.
    Only keys the project left unset are filled in. Returns whether it was SQLite.
    """
    settings_dict = connections[alias()].settings_dict
    if settings_dict["ENGINE"] != "django.db.backends.sqlite3":
        return False
    options = settings_dict.setdefault("OPTIONS", {})
    options.setdefault("transaction_mode", "IMMEDIATE")
    options.setdefault("timeout", 20)
    if "journal_mode" not in options.get("init_command", "").lower():
        commands = [c for c in options.get("init_command", "").split(";") if c.strip()]
        options["init_command"] = ";".join([*commands, "PRAGMA journal_mode=WAL"])
    return True
