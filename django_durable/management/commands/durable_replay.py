"""`manage.py durable_replay`: check that the deployed code still replays a stored history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_durable import store
from django_durable.exceptions import NonDeterminismError, WorkflowNotFound
from django_durable.testing import export_history, load_export, replay

from ._cli import command_errors


class Command(BaseCommand):
    help = (
        "Replay an execution's stored history (or an exported one, with --file) against the "
        "code deployed now, without writing anything or running activities. Fails with the "
        "expected-vs-found command when the code is no longer compatible."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "execution_id", nargs="?", help="The execution's id (a UUID); or use --file."
        )
        parser.add_argument(
            "--file",
            metavar="FILE",
            help="Replay a history exported with --export (or export_history) instead.",
        )
        parser.add_argument(
            "--workflow",
            metavar="NAME",
            help="Replay with this registered workflow instead of the one the history names.",
        )
        parser.add_argument(
            "--export",
            metavar="FILE",
            help="Also write the execution's history as JSON to FILE (before replaying), "
            "for use as a CI fixture.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        execution_id, path = options["execution_id"], options["file"]
        if (execution_id is None) == (path is None):
            raise CommandError("Pass either an EXECUTION_ID or --file FILE.")
        if path is not None and options["export"]:
            raise CommandError("--export needs an EXECUTION_ID: a --file history is exported.")
        with command_errors(WorkflowNotFound, ValueError):
            if path is not None:
                history = load_export(path)
            else:
                history = store.get_execution(execution_id)
                if options["export"]:
                    self._export(history.pk, options["export"])
        with command_errors(NonDeterminismError, WorkflowNotFound, ValueError):
            result = replay(history, options["workflow"])
        self.stdout.write(f"OK: replayed {result.events} events, {result.describe()}")

    def _export(self, execution_id, target: str) -> None:
        export = export_history(execution_id)
        try:
            Path(target).write_text(json.dumps(export, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {target!r}: {exc.strerror}.") from exc
        self.stdout.write(f"Exported {len(export['events'])} events to {target}.")
