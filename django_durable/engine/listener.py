"""PostgreSQL LISTEN on a dedicated autocommit connection that wakes the worker.

NOTIFY is only a hint: every wake-up re-queries. After a (re)connect the worker is woken
for a catch-up sweep, and LISTEN is issued before that sweep so nothing falls between.
"""

from __future__ import annotations

import asyncio
import logging
import os

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql

from ..conf import durable_setting

logger = logging.getLogger(__name__)

_DJANGO_ONLY_OPTIONS = {"pool", "isolation_level", "server_side_binding", "assume_role"}


def conninfo_for(alias: str) -> str:
    """A libpq connection string for the Django database `alias`, never a pooled one."""
    settings_dict = connections[alias].settings_dict
    params = {
        "dbname": settings_dict.get("NAME") or "postgres",
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": str(settings_dict.get("PORT") or "") or None,
        "application_name": f"django_durable listener {os.getpid()}",
    }
    options = {
        key: value
        for key, value in settings_dict.get("OPTIONS", {}).items()
        if key not in _DJANGO_ONLY_OPTIONS
    }
    params.update(options)
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def listen_conninfo() -> str:
    """The libpq string of the worker's LISTEN connection: `DURABLE["LISTEN_DATABASE"]` (an
    alias of DATABASES or a libpq string), else the engine's own database alias."""
    target = durable_setting("LISTEN_DATABASE")
    if target is None:
        return conninfo_for(durable_setting("DATABASE"))
    if target in settings.DATABASES:
        return conninfo_for(target)
    params = psycopg.conninfo.conninfo_to_dict(target)
    params.setdefault("application_name", f"django_durable listener {os.getpid()}")
    return psycopg.conninfo.make_conninfo(**params)


EVERYTHING = "*"  # a kind meaning: anything may have become runnable (after a reconnect)


class Listener:
    """Sets `wake` on every notification and notes its kind (`take_kinds`: "workflow",
    "activity"), so the worker queries only for what may be there; reconnects with back-off
    when the connection dies."""

    def __init__(self, conninfo: str, wake: asyncio.Event) -> None:
        self.conninfo = conninfo
        self.channel = durable_setting("CHANNEL")
        self.wake = wake
        self.connected = asyncio.Event()
        self.connects = 0
        self._kinds: set[str] = {EVERYTHING}

    def take_kinds(self) -> set[str]:
        """The kinds of work notified since the last call (EVERYTHING after a reconnect)."""
        kinds, self._kinds = self._kinds, set()
        return kinds

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                self.connected.clear()
                logger.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    async def _listen(self) -> None:
        probe_every = durable_setting("SWEEP_SECONDS")
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.connects += 1
            if self.connects > 1:
                logger.warning("LISTEN connection restored")
            self.connected.set()
            self._kinds.add(EVERYTHING)  # catch up on whatever was sent while we were away
            self.wake.set()
            while True:
                async for notification in conn.notifies(timeout=probe_every):
                    self._kinds.add(notification.payload.partition(":")[0])
                    self.wake.set()
                await conn.execute("SELECT 1")  # probe: raises if the connection is gone
