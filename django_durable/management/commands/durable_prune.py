"""`manage.py durable_prune`: delete ended executions older than a cut-off, in batches, with
its progress on stderr (a bar on a terminal, a line every few seconds otherwise; none
with `-v 0`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_durable import store

from ..progress import Progress
from ._cli import check_amount

MAX_BATCH = 10_000  # ids in one DELETE ... WHERE id IN (...); SQLite allows 32,766 parameters


class Command(BaseCommand):
    help = (
        "Delete executions that ended more than --older-than days ago, with their history, "
        "activity tasks and signals, and the rows of workers silent since then. Running and "
        "parked executions are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            required=True,
            metavar="DAYS",
            help="Delete executions that finished more than this many days ago.",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help=f"Executions deleted per transaction (1 to {MAX_BATCH}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        check_amount(options["older_than"], "--older-than", "days")
        if not 1 <= options["batch"] <= MAX_BATCH:
            raise CommandError(f"--batch must be from 1 to {MAX_BATCH}, not {options['batch']}.")
        try:
            before = timezone.now() - timedelta(days=options["older_than"])
        except OverflowError:
            raise CommandError(
                f"--older-than {options['older_than']:g} days reaches back before the year 1."
            ) from None
        progress = Progress(self.stderr) if options["verbosity"] >= 1 else None
        if progress is not None:
            progress.task("Executions deleted", None)
        deleted = store.prune_executions(
            before,
            batch=options["batch"],
            on_batch=progress.advance if progress is not None else None,
        )
        if progress is not None:
            progress.end()
        workers = store.prune_workers(before)
        self.stdout.write(
            f"Deleted {deleted} execution(s) that ended before {before:%Y-%m-%d %H:%M} UTC, "
            f"and {workers} worker row(s) silent since then."
        )
