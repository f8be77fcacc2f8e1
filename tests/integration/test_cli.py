"""The durable_start, durable_signal and durable_cancel management commands."""

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings

from django_durable import WorkflowBlocked, start_workflow, wait_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.management.commands.durable_start import format_result
from django_durable.models import HistoryEvent, PendingSignal, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    """Call a command as `manage.py` would parse it and return what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    """Call a command that must fail; return its CommandError message."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=out)
    assert out.getvalue() == ""
    return str(caught.value)


def assert_nothing_written(executions: int = 0) -> None:
    assert WorkflowExecution.objects.count() == executions
    assert HistoryEvent.objects.count() == executions  # only each start's first event
    assert not PendingSignal.objects.exists()


# -- the tutorial ------------------------------------------------------------------------


def test_tutorial_start_command():
    out = run("durable_start", "yourapp.onboard_user", "--input", '{"user_id": 7}')
    execution = WorkflowExecution.objects.get()
    assert out == f"{execution.pk}\n"
    assert execution.workflow_name == "yourapp.onboard_user"
    assert execution.input == {"user_id": 7}
    assert execution.status == ExecutionStatus.RUNNING


def test_tutorial_signal_command(drive):
    execution_id = start_workflow("yourapp.example_with_signal")
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    out = run("durable_signal", str(execution_id), "go", "--input", '{"clicked": true}')
    assert out == f"Sent signal 'go' to execution {execution_id}.\n"
    drive(execution_id)
    assert wait_workflow(execution_id) == {"sig": {"clicked": True}}


# -- durable_start ---------------------------------------------------------------------------


def test_start_without_input_passes_no_arguments():
    out = run("durable_start", "yourapp.example_with_signal")
    execution = WorkflowExecution.objects.get()
    assert out == f"{execution.pk}\n"
    assert execution.input == {}


def test_start_with_workflow_id_returns_the_same_execution_twice():
    args = ("durable_start", "testapp.add_twice", "--input", '{"a": 1, "b": 2}')
    first = run(*args, "--workflow-id", "order-42")
    second = run(*args, "--workflow-id", "order-42")
    execution = WorkflowExecution.objects.get()
    assert first == second == f"{execution.pk}\n"
    assert execution.workflow_id == "order-42"


def test_start_and_wait_prints_the_result_once_a_runner_ends_it(drive):
    errors = []

    def runner() -> None:
        try:
            deadline = time.monotonic() + 10
            while not (found := WorkflowExecution.objects.filter(workflow_id="cli-wait")):
                assert time.monotonic() < deadline, "durable_start never started the execution"
                time.sleep(0.02)
            drive(found[0].pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=runner)
    thread.start()
    try:
        out = run(
            "durable_start",
            "testapp.add_twice",
            "--input",
            '{"a": 1, "b": 2}',
            "--workflow-id",
            "cli-wait",
            "--wait",
            "--timeout",
            "10",
        )
    finally:
        thread.join()
    assert errors == []
    execution = WorkflowExecution.objects.get()
    assert out == f"{execution.pk}\n5\n"


def test_start_and_wait_for_an_execution_that_already_completed(drive):
    execution_id = start_workflow("yourapp.onboard_user", workflow_id="done", user_id=7)
    drive(execution_id)
    out = run(
        "durable_start",
        "yourapp.onboard_user",
        "--input",
        '{"user_id": 7}',
        "--workflow-id",
        "done",
        "--wait",
    )
    assert out == f'{execution_id}\n{{"ok": true, "score": 42}}\n'


def test_results_print_as_one_line_of_json():
    assert format_result({"ok": True, "items": [1, None]}) == '{"ok": true, "items": [1, null]}'
    assert format_result(None) == "null"
    assert format_result("done") == '"done"'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("yourapp.onboard_user", "--input", '{"user_id": 7'),
            "--input is not valid JSON: Expecting ',' delimiter: line 1 column 14 (char 13).",
        ),
        (
            ("yourapp.onboard_user", "--input", "{'user_id': 7}"),
            "--input is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1).",
        ),
        (
            ("yourapp.onboard_user", "--input", ""),
            "--input is not valid JSON: Expecting value: line 1 column 1 (char 0).",
        ),
        (
            ("yourapp.onboard_user", "--input", '{"user_id": NaN}'),
            "--input is not valid JSON: NaN is not a JSON value.",
        ),
        (
            ("yourapp.onboard_user", "--input", "[7]"),
            "--input must be a JSON object of the workflow's keyword arguments, not an array.",
        ),
        (
            ("yourapp.onboard_user", "--input", "7"),
            "--input must be a JSON object of the workflow's keyword arguments, not a number.",
        ),
        (
            ("yourapp.onboard_user", "--input", "null"),
            "--input must be a JSON object of the workflow's keyword arguments, not null.",
        ),
        (
            ("yourapp.onboard_user", "--input", '{"workflow_id": "x", "user_id": 7}'),
            "--input cannot hold 'workflow_id': pass --workflow-id instead.",
        ),
        (
            ("testapp.add_twise", "--input", '{"a": 1, "b": 2}'),
            "No workflow is registered as 'testapp.add_twise'. "
            "Did you mean 'testapp.add_twice', 'testapp.fails', 'testapp.fan_out'?",
        ),
        (
            ("nope.missing",),
            "No workflow is registered as 'nope.missing'.",
        ),
        (
            ("testapp.add_twice", "--input", '{"a": 1}'),
            "Bad input for workflow 'testapp.add_twice': missing a required argument: 'b'.",
        ),
        (
            ("testapp.add_twice", "--input", '{"a": 1, "b": 2, "c": 3}'),
            "Bad input for workflow 'testapp.add_twice': got an unexpected keyword argument 'c'.",
        ),
        (
            ("yourapp.onboard_user", "--timeout", "5"),
            "--timeout only applies with --wait.",
        ),
        (
            ("yourapp.onboard_user", "--wait", "--timeout", "soon"),
            "Error: argument --timeout: invalid float value: 'soon'",
        ),
    ],
)
def test_bad_start_is_refused_and_writes_nothing(args, message):
    assert refused("durable_start", *args) == message
    assert_nothing_written()


@override_settings(DURABLE={"LEASE_SECONDS": 5, "MAX_PAYLOAD_BYTES": 40})
def test_too_large_start_input_is_refused_and_writes_nothing():
    message = refused(
        "durable_start", "yourapp.onboard_user", "--input", '{"user_id": "' + "x" * 40 + '"}'
    )
    assert message == (
        "The input of workflow 'yourapp.onboard_user' is 55 bytes of JSON, over the 40-byte limit."
    )
    assert_nothing_written()


def test_wait_timeout_is_refused_while_the_execution_goes_on():
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "durable_start",
            "testapp.add_twice",
            "--input",
            '{"a": 1, "b": 1}',
            "--wait",
            "--timeout",
            "0.2",
            stdout=out,
        )
    execution = WorkflowExecution.objects.get()
    assert out.getvalue() == f"{execution.pk}\n"
    assert str(caught.value) == (
        f"Execution {execution.pk} did not end within 0.2 s. "
        "It goes on; a worker will run it to its end."
    )
    assert execution.status == ExecutionStatus.RUNNING


def test_wait_for_a_failed_execution_is_refused_with_its_error(drive):
    execution_id = start_workflow("testapp.fails", workflow_id="bad", message="card declined")
    drive(execution_id)
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "durable_start",
            "testapp.fails",
            "--input",
            '{"message": "card declined"}',
            "--workflow-id",
            "bad",
            "--wait",
            stdout=out,
        )
    assert out.getvalue() == f"{execution_id}\n"
    assert str(caught.value) == (
        f"Workflow execution {execution_id} failed: django_durable.exceptions.ActivityError: "
        "Activity 'testapp.explode' failed: builtins.ValueError: card declined "
        "(its traceback is stored on the execution)."
    )
    assert WorkflowExecution.objects.count() == 1


def test_wait_for_a_canceled_execution_is_refused(drive):
    execution_id = start_workflow("testapp.cancellable", workflow_id="gone")
    run("durable_cancel", str(execution_id))
    drive(execution_id)
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "durable_start", "testapp.cancellable", "--workflow-id", "gone", "--wait", stdout=out
        )
    assert out.getvalue() == f"{execution_id}\n"
    assert str(caught.value) == f"Workflow execution {execution_id} was canceled."


# -- durable_signal --------------------------------------------------------------------------


def test_signal_without_input_sends_null(drive):
    execution_id = start_workflow("testapp.collect_signals", count=3)
    assert run("durable_signal", str(execution_id), "item") == (
        f"Sent signal 'item' to execution {execution_id}.\n"
    )
    run("durable_signal", str(execution_id), "item", "--input", '"text"')
    run("durable_signal", str(execution_id), "item", "--input", "[1, 2.5, false]")
    drive(execution_id)
    assert wait_workflow(execution_id) == [None, "text", [1, 2.5, False]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"clicked": tru}',
            "--input is not valid JSON: Expecting value: line 1 column 13 (char 12).",
        ),
        ("Infinity", "--input is not valid JSON: Infinity is not a JSON value."),
        ("", "--input is not valid JSON: Expecting value: line 1 column 1 (char 0)."),
    ],
)
def test_malformed_signal_input_is_refused_and_writes_nothing(text, message):
    execution_id = start_workflow("yourapp.example_with_signal")
    assert refused("durable_signal", str(execution_id), "go", "--input", text) == message
    assert_nothing_written(executions=1)


@override_settings(DURABLE={"LEASE_SECONDS": 5, "MAX_PAYLOAD_BYTES": 20})
def test_too_large_signal_payload_is_refused_and_writes_nothing():
    execution_id = start_workflow("yourapp.example_with_signal")
    message = refused("durable_signal", str(execution_id), "go", "--input", '"' + "x" * 30 + '"')
    assert message == "The payload of signal 'go' is 32 bytes of JSON, over the 20-byte limit."
    assert_nothing_written(executions=1)


@pytest.mark.parametrize("bad_id", ["5e1c0c4e-0000-4000-8000-000000000001", "not-a-uuid"])
def test_signal_to_an_unknown_execution_is_refused(bad_id):
    message = refused("durable_signal", bad_id, "go", "--input", '{"clicked": true}')
    assert message == f"No workflow execution has the id {bad_id!r}."
    assert_nothing_written()


def test_signal_to_a_finished_execution_is_refused(drive):
    execution_id = start_workflow("testapp.add_twice", a=1, b=1)
    drive(execution_id)
    message = refused("durable_signal", str(execution_id), "go")
    assert message == f"Execution {execution_id} is already completed; it cannot take signals."
    assert not PendingSignal.objects.exists()


# -- durable_cancel --------------------------------------------------------------------------


def test_cancel_then_drive_ends_canceled(drive):
    execution_id = start_workflow("testapp.cancellable")
    out = run("durable_cancel", str(execution_id), "--reason", "user asked")
    assert out == f"Requested cancellation of execution {execution_id}.\n"
    drive(execution_id)
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.CANCELED
    assert HistoryEvent.objects.filter(
        kind=EventKind.CANCEL_REQUESTED, data__reason="user asked"
    ).exists()


def test_cancel_twice_is_one_request():
    execution_id = start_workflow("testapp.cancellable")
    run("durable_cancel", str(execution_id))
    assert run("durable_cancel", str(execution_id), "--reason", "again") == (
        f"Requested cancellation of execution {execution_id}.\n"
    )
    execution = WorkflowExecution.objects.get()
    assert execution.cancel_requested
    assert execution.cancel_reason == ""


@pytest.mark.parametrize("bad_id", ["5e1c0c4e-0000-4000-8000-000000000001", "not-a-uuid"])
def test_cancel_of_an_unknown_execution_is_refused(bad_id):
    message = refused("durable_cancel", bad_id, "--reason", "user asked")
    assert message == f"No workflow execution has the id {bad_id!r}."
    assert_nothing_written()


def test_cancel_of_a_finished_execution_is_refused(drive):
    execution_id = start_workflow("testapp.add_twice", a=1, b=1)
    drive(execution_id)
    message = refused("durable_cancel", str(execution_id))
    assert message == f"Execution {execution_id} is already completed; it cannot be canceled."
    execution = WorkflowExecution.objects.get()
    assert not execution.cancel_requested
    assert not execution.history.filter(kind=EventKind.CANCEL_REQUESTED).exists()


# -- from a shell ----------------------------------------------------------------------------


def test_refusal_from_the_command_line_is_one_line_without_traceback():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "django", "durable_start", "nope.missing", "--input", "{}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == "CommandError: No workflow is registered as 'nope.missing'.\n"
    assert_nothing_written()
