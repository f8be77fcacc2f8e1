"""`manage.py durable_start`: start a workflow from the shell and print its execution id."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_durable.api import start_workflow, wait_workflow
from django_durable.exceptions import DurableError, WaitTimeout, WorkflowFailed

from ._cli import check_amount, command_errors, json_type_name, parse_json_option

# start_workflow's own keyword arguments, which a workflow cannot take as inputs.
START_OPTIONS = frozenset({"id_reuse_policy", "execution_timeout"})


def format_result(result: Any) -> str:
    """A finished execution's result as one line of JSON, so scripts can read it back."""
    return json.dumps(result)


class Command(BaseCommand):
    help = (
        "Start a workflow and print its execution id. With --wait, also wait for it to end "
        "and print its result as JSON on a second line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name", help="The workflow's registered name, e.g. yourapp.onboard_user."
        )
        parser.add_argument(
            "--input",
            metavar="JSON",
            default="{}",
            help="The workflow's keyword arguments as a JSON object (default: {}).",
        )
        parser.add_argument(
            "--workflow-id",
            metavar="ID",
            help="An id of your own: while an execution has it, starting again returns "
            "that execution's id instead of starting another.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait for the execution to end and print its result as JSON.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="With --wait, give up after this many seconds (the execution goes on).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] is not None and not options["wait"]:
            raise CommandError("--timeout only applies with --wait.")
        check_amount(options["timeout"], "--timeout", "seconds")
        inputs = parse_json_option(options["input"], "--input")
        if not isinstance(inputs, dict):
            raise CommandError(
                "--input must be a JSON object of the workflow's keyword arguments, "
                f"not {json_type_name(inputs)}."
            )
        if "workflow_id" in inputs:
            raise CommandError("--input cannot hold 'workflow_id': pass --workflow-id instead.")
        if taken := sorted(START_OPTIONS & inputs.keys()):  # start_workflow would take them
            raise CommandError(
                f"--input cannot hold {taken[0]!r}: it is an option of start_workflow, "
                "not an input of the workflow."
            )
        with command_errors(DurableError):
            execution_id = start_workflow(
                options["name"], workflow_id=options["workflow_id"], **inputs
            )
        self.stdout.write(str(execution_id))
        if not options["wait"]:
            return
        try:
            result = wait_workflow(execution_id, timeout=options["timeout"])
        except WaitTimeout as exc:
            raise CommandError(f"{exc} It goes on; a worker will run it to its end.") from exc
        except WorkflowFailed as exc:
            raise CommandError(
                f"Workflow execution {execution_id} failed: "
                f"{exc.error_type}: {' '.join(exc.message.split())} "
                "(its traceback is stored on the execution)."
            ) from exc
        except DurableError as exc:  # canceled, timed out, or gone (pruned) meanwhile
            raise CommandError(" ".join(str(exc).split())) from exc
        self.stdout.write(format_result(result))
