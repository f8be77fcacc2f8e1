"""PostgreSQL's own counts of the bench database's transactions and statements.

`pg_stat_database` counts are flushed by each backend, not at once: a busy backend flushes
at most once a second, and one that flushed less than a second ago and then goes idle keeps
its counts for up to 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL). A window is therefore read
with the workers paused and `settle` seconds after their last work (see `Window`), and the
benchmark's own queries inside it are counted here and taken off.
`pg_stat_statements` counts when each statement ends, with no delay, when it is loaded.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection

_XACTS = (
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
)
_STATEMENTS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(frozen=True)
class Counts:
    transactions: int
    statements: int | None  # None: pg_stat_statements is not available


class QueryCounter:
    """Counts the queries this process sends on Django's connection while `active`.

    The benchmark's probes run in autocommit, so each is one transaction and one statement."""

    def __init__(self) -> None:
        self.queries = 0
        self.active = False

    def __call__(self, execute, sql, params, many, context):
        if self.active:
            self.queries += 1
        return execute(sql, params, many, context)

    @contextmanager
    def exempt(self):
        """Queries that belong to the work measured (the starts), not to the benchmark."""
        was, self.active = self.active, False
        try:
            yield
        finally:
            self.active = was


class PgStats:
    """Reads the counts; `available` is False on other databases."""

    def __init__(self) -> None:
        self.available = connection.vendor == "postgresql"
        self.statements_available = self.available and self._enable_statements()

    def _enable_statements(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SHOW shared_preload_libraries")
            if "pg_stat_statements" not in cursor.fetchone()[0]:
                return False
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            except Exception:  # no privilege: say n/a rather than fail the run
                return False
        return True

    def read(self) -> Counts:
        """The counts now, this backend's own pending ones flushed first."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute(_XACTS)
            transactions = cursor.fetchone()[0]
            statements = None
            if self.statements_available:
                cursor.execute(_STATEMENTS)
                statements = int(cursor.fetchone()[0])
        return Counts(int(transactions), statements)


class Window:
    """Transactions and statements between `open` and `close`, the benchmark's own taken off.

    Open it and close it with the workers paused, after `settle` seconds of quiet, so that
    every backend has flushed: the counts are then exact but for a few of the benchmark's."""

    def __init__(self, stats: PgStats) -> None:
        self.stats = stats
        self.counter = QueryCounter()
        self.before: Counts | None = None
        self.after: Counts | None = None

    @contextmanager
    def measuring(self):
        if not self.stats.available:
            yield self
            return
        self.before = self.stats.read()
        with connection.execute_wrapper(self.counter):
            self.counter.active = True
            try:
                yield self
            finally:
                self.counter.active = False
        self.after = self.stats.read()

    def per(self, units: int) -> dict[str, float | None]:
        """Transactions and statements per unit (e.g. per workflow); None where unknown."""
        if self.before is None or self.after is None or units <= 0:
            return {"transactions": None, "statements": None}
        # Inside the window besides the counted probes: the first read's last query or two
        # and the second read's flush (transactions); for pg_stat_statements, which counts a
        # statement as it ends, the first read's last query and the second read's first two.
        extra = 2 + (1 if self.stats.statements_available else 0)
        transactions = (
            self.after.transactions - self.before.transactions - self.counter.queries - extra
        )
        statements = None
        if self.after.statements is not None and self.before.statements is not None:
            statements = self.after.statements - self.before.statements - self.counter.queries - 3
        return {
            "transactions": round(transactions / units, 2),
            "statements": None if statements is None else round(statements / units, 2),
        }
