"""`manage.py durable_prune`: delete ended executions older than a cut-off, in batches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_durable import store


class Command(BaseCommand):
    help = (
        "Delete executions that ended more than --older-than days ago, with their history, "
        "activity tasks and signals. Running and parked executions are never touched."
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
            "--batch", type=int, default=500, help="Executions deleted per transaction."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative.")
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        before = timezone.now() - timedelta(days=options["older_than"])
        deleted = store.prune_executions(before, batch=options["batch"])
        self.stdout.write(
            f"Deleted {deleted} execution(s) that ended before {before:%Y-%m-%d %H:%M} UTC."
        )
