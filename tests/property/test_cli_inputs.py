"""Bad input, systematically: the durable_* commands fed arbitrary text, in process and from
a shell. A refusal is one `CommandError` line (exit status 1, no traceback) and writes
nothing; what the command accepts is stored as given.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import example, given
from hypothesis import strategies as st

from django_durable.constants import EventKind
from django_durable.models import PendingSignal, WorkflowExecution

from .strategies import (
    as_stored,
    json_values,
    malformed_execution_ids,
    unknown_execution_ids,
    workflow_inputs,
)
from .support import database_state, examples

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def run(command: str, *args: str) -> str:
    """Run a command in this process, as `manage.py` would parse `args`; return its output."""
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused_command(command: str, *args: str, message: str = "") -> str:
    """Run a command that must be refused with one line, writing nothing; return the line."""
    before = database_state()
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(command, *args, stdout=out, stderr=io.StringIO())
    text = str(caught.value)
    assert text.strip() and "\n" not in text, repr(text)
    assert message in text
    assert out.getvalue() == ""
    assert database_state() == before, "a refused command left rows behind"
    return text


def run_or_refused(command: str, *args: str) -> str | None:
    """The command's output, or None if it was refused (with one line, writing nothing)."""
    before = database_state()
    out = io.StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        assert str(exc).strip() and "\n" not in str(exc), repr(str(exc))
        assert database_state() == before, "a refused command left rows behind"
        return None
    return out.getvalue()


def nested_text(depth: int) -> str:
    return '{"value": ' + "[" * depth + "]" * depth + "}"


# Text for --input: any text at all, JSON of every kind, and JSON the database cannot store.
input_texts = st.one_of(
    st.text(max_size=40),
    st.builds(json.dumps, json_values),
    st.builds(json.dumps, workflow_inputs),
    st.builds(lambda inputs: json.dumps(inputs, ensure_ascii=False), workflow_inputs),
    st.sampled_from(
        [
            '{"value": "a\\u0000b"}',
            '{"a\\u0000": 1}',
            '{"value": "\\ud800"}',
            '{"value": "\\udfff\\ud800"}',
            '{"value": 1e400}',
            '{"value": -1e400}',
            '{"value": NaN}',
            '{"value": Infinity}',
            '{"value": 1' + "0" * 5000 + "}",
            '{"execution_timeout": 5}',
            '{"id_reuse_policy": "allow_duplicate"}',
            '{"workflow_id": "x"}',
        ]
    ),
    st.integers(1_000, 200_000).map(nested_text),  # deeper than json.loads can go
)


# -- durable_start ---------------------------------------------------------------------------


@examples(30)
@given(inputs=workflow_inputs)
def test_start_stores_any_json_object_as_given(echo_workflow, inputs):
    out = run("durable_start", f"--input={json.dumps(inputs)}", "--", echo_workflow)
    execution = WorkflowExecution.objects.get(pk=out.strip())
    assert as_stored(execution.input) == as_stored(inputs)


@examples(60)
@given(text=input_texts)
def test_start_with_any_input_text_starts_or_is_refused(echo_workflow, text):
    out = run_or_refused("durable_start", f"--input={text}", "--", echo_workflow)
    if out is not None:
        execution = WorkflowExecution.objects.get(pk=out.strip())
        assert as_stored(execution.input) == as_stored(json.loads(text))


@examples(30)
@given(name=st.text(max_size=250))
def test_start_of_any_unregistered_name_is_refused(name):
    refused_command("durable_start", "--", name)


@examples(30)
@given(workflow_id=st.text(max_size=250))
def test_start_with_any_workflow_id_starts_or_is_refused(echo_workflow, workflow_id):
    out = run_or_refused("durable_start", f"--workflow-id={workflow_id}", "--", echo_workflow)
    if out is not None:
        execution = WorkflowExecution.objects.get(pk=out.strip())
        assert execution.workflow_id == workflow_id


@examples(20)
@given(
    timeout=st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-1", "-0.001", "soon", ""])
    | st.floats(max_value=-1e-6).map(repr)
)
def test_start_and_wait_with_a_bad_timeout_is_refused_before_starting(echo_workflow, timeout):
    refused_command("durable_start", "--wait", f"--timeout={timeout}", "--", echo_workflow)


# -- durable_signal and durable_cancel -------------------------------------------------------

execution_id_texts = unknown_execution_ids.map(str) | malformed_execution_ids


@examples(30)
@given(execution_id=execution_id_texts, name=st.text(max_size=20))
def test_signal_to_any_unknown_or_malformed_id_is_refused(execution_id, name):
    refused_command("durable_signal", "--input=1", "--", execution_id, name)


@examples(30)
@given(execution_id=execution_id_texts, reason=st.text(max_size=20))
def test_cancel_of_any_unknown_or_malformed_id_is_refused(execution_id, reason):
    refused_command("durable_cancel", f"--reason={reason}", "--", execution_id)


@examples(40)
@given(name=st.text(max_size=250), text=input_texts | st.none())
def test_signal_with_any_name_and_input_is_queued_or_refused(running_execution, name, text):
    args = [] if text is None else [f"--input={text}"]
    out = run_or_refused("durable_signal", *args, "--", str(running_execution), name)
    if out is not None:
        signal = PendingSignal.objects.latest("pk")
        assert signal.name == name
        assert as_stored(signal.payload) == as_stored(None if text is None else json.loads(text))


@examples(25)
@given(reason=st.text(max_size=300))
def test_cancel_with_any_reason_is_recorded_or_refused(reason):
    execution = WorkflowExecution.objects.get(
        pk=run("durable_start", "--input", '{"count": 1}', "testapp.collect_signals").strip()
    )
    if run_or_refused("durable_cancel", f"--reason={reason}", "--", str(execution.pk)):
        execution.refresh_from_db()
        assert execution.cancel_requested
        assert execution.cancel_reason == reason
    else:
        assert "\x00" in reason or any(0xD800 <= ord(char) <= 0xDFFF for char in reason)


# -- durable_prune and durable_replay --------------------------------------------------------


@examples(20)
@given(
    older_than=st.sampled_from(["nan", "inf", "-inf", "1e400", "1e12", "-1", "days"])
    | st.floats(max_value=-1e-6).map(repr),
)
def test_prune_with_a_bad_age_is_refused(older_than):
    refused_command("durable_prune", f"--older-than={older_than}")


@examples(15)
@given(
    batch=st.sampled_from(["0", "-1", "10001", "1" * 30, "1.5", "many"])
    | st.integers(max_value=0).map(str)
)
def test_prune_with_a_bad_batch_is_refused(batch):
    refused_command("durable_prune", "--older-than=1", f"--batch={batch}")


@examples(30)
@given(execution_id=execution_id_texts)
def test_replay_of_any_unknown_or_malformed_id_is_refused(execution_id):
    refused_command("durable_replay", "--", execution_id)


EVENT_KINDS = sorted(
    value for key, value in vars(EventKind).items() if key.isupper() and isinstance(value, str)
)
# Exported histories gone wrong: hand-edited, truncated, or not histories at all.
history_events = st.fixed_dictionaries(
    {"kind": st.sampled_from(EVENT_KINDS)},
    optional={
        "command_seq": st.integers(-2, 5) | json_values,
        "name": st.sampled_from(["testapp.add", "testapp.add_twice", ""]) | json_values,
        "data": st.fixed_dictionaries({}, optional={"input": json_values, "result": json_values})
        | json_values,
    },
)
history_files = st.one_of(
    st.text(max_size=30),
    st.builds(json.dumps, json_values),
    st.builds(
        json.dumps,
        st.fixed_dictionaries(
            {"events": st.lists(history_events, max_size=4) | json_values},
            optional={
                "workflow_name": st.sampled_from(["testapp.add_twice", "nope.missing"])
                | json_values,
                "execution_id": st.uuids().map(str) | json_values,
                "input": workflow_inputs | json_values,
            },
        ),
    ),
)


@examples(10)
@given(depth=st.integers(1_000, 100_000))
def test_replay_of_a_file_nested_too_deeply_is_refused(tmp_path_factory, depth):
    path = tmp_path_factory.mktemp("histories") / "deep.json"
    path.write_text('{"events": ' + "[" * depth + "]" * depth + "}", encoding="utf-8")
    refused_command("durable_replay", f"--file={path}")


@examples(60)
@given(content=history_files)
@example(content='{"events": [{"kind": "activity_completed", "command_seq": 1, "data": 1}]}')
@example(content='{"events": [], "workflow_name": []}')
def test_replay_of_any_file_replays_or_is_refused(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("histories") / "history.json"
    path.write_text(content, encoding="utf-8")
    run_or_refused("durable_replay", f"--file={path}")


# -- from a shell: one line on stderr, exit status 1, no traceback ---------------------------


def test_refusals_from_the_command_line_are_one_line_without_traceback(running_execution):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = ["durable_start", "testapp.collect_signals"]
    cases = {
        "NUL in the input": (
            [*start, "--input", '{"count": "a\\u0000b"}'],
            "CommandError: The input of workflow 'testapp.collect_signals' contains a NUL",
        ),
        "input nested too deeply": (
            [*start, "--input", '{"count": ' + "[" * 50_000 + "]" * 50_000 + "}"],
            "CommandError: --input is nested too deeply to be stored.",
        ),
        "NaN timeout": (
            [*start, "--input", '{"count": 1}', "--wait", "--timeout", "nan"],
            "CommandError: --timeout must be a finite number of seconds, not nan.",
        ),
        "workflow_id too long": (
            [*start, "--input", '{"count": 1}', "--workflow-id", "x" * 201],
            "CommandError: workflow_id must be 1 to 200 characters long, not 201.",
        ),
        "undecodable workflow_id": (
            [*start, "--input", '{"count": 1}', "--workflow-id", os.fsdecode(b"order-\xff")],
            "CommandError: The workflow_id 'order-\\udcff' contains a lone surrogate",
        ),
        "signal to a malformed id": (
            ["durable_signal", "not-a-uuid", "go"],
            "CommandError: No workflow execution has the id 'not-a-uuid'.",
        ),
        "empty signal name": (
            ["durable_signal", str(running_execution), ""],
            "CommandError: The signal name must be 1 to 200 characters long, not 0.",
        ),
        "infinite prune age": (
            ["durable_prune", "--older-than", "inf"],
            "CommandError: --older-than must be a finite number of days, not inf.",
        ),
    }
    before = database_state()
    processes = {
        case: subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for case, (args, _) in cases.items()
    }
    failures = []
    for case, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        expected = cases[case][1]
        lines = stderr.decode("utf-8", "backslashreplace").splitlines()
        if not (process.returncode == 1 and stdout == b"" and len(lines) == 1):
            failures.append(f"{case}: exit {process.returncode}, stdout {stdout!r}, {lines}")
        elif not lines[0].startswith(expected):
            failures.append(f"{case}: {lines[0]!r} does not start with {expected!r}")
    assert failures == []
    assert database_state() == before
