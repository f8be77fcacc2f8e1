"""`manage.py durable_cancel`: ask an execution to cancel from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_durable.api import cancel_workflow
from django_durable.exceptions import DurableError

from ._cli import command_errors


class Command(BaseCommand):
    help = (
        "Ask an execution to cancel: its workflow sees asyncio.CancelledError at its "
        "current await and may clean up before it ends canceled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("execution_id", help="The execution's id (a UUID).")
        parser.add_argument(
            "--reason", metavar="TEXT", default="", help="Why; recorded in the execution's history."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_errors(DurableError):
            cancel_workflow(options["execution_id"], options["reason"])
        self.stdout.write(f"Requested cancellation of execution {options['execution_id']}.")
