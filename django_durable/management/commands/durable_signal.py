"""`manage.py durable_signal`: send a signal to a running execution from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_durable.api import send_signal
from django_durable.exceptions import DurableError

from ._cli import command_errors, parse_json_option


class Command(BaseCommand):
    help = "Send a signal to an execution; its next ctx.wait_signal(NAME) receives the payload."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("execution_id", help="The execution's id (a UUID).")
        parser.add_argument("name", help="The signal's name, as the workflow waits for it.")
        parser.add_argument(
            "--input",
            metavar="JSON",
            help="The payload: any JSON value (default: null).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        payload = None
        if options["input"] is not None:
            payload = parse_json_option(options["input"], "--input")
        with command_errors(DurableError):
            send_signal(options["execution_id"], options["name"], payload)
        self.stdout.write(
            f"Sent signal {options['name']!r} to execution {options['execution_id']}."
        )
