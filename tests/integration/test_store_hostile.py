"""Values the database cannot store are refused where they are produced, and a refusal while
recording is permanent for that attempt or task: never a row retried at every lease."""

import sys
from datetime import timedelta
from typing import Any

import pytest
from django.db import DataError, connection  # noqa: F401  (skipif conditions)
from django.utils import timezone

from django_durable import (
    PayloadError,
    RetryPolicy,
    WorkflowFailed,
    cancel_workflow,
    run_workflow,
    send_signal,
    start_workflow,
    store,
)
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.engine.activities import settle_activity
from django_durable.models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from django_durable.payloads import (
    MAX_ERROR_TEXT,
    check_text,
    describe_exception,
    storable_error,
    to_json_value,
)
from django_durable.registry import ActivityDefinition, register
from django_durable.runtime.events import Event

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = timedelta(seconds=3)  # tests.settings sets DURABLE["LEASE_SECONDS"] = 3

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="only PostgreSQL refuses these values itself"
)

NUL_TEXT = (
    "contains a NUL character (\\x00) {where}, which PostgreSQL cannot store in JSON. "
    "Remove it, or encode the data (e.g. base64)."
)
SURROGATE_TEXT = (
    "contains a lone surrogate {where}, which is not valid Unicode and cannot be stored. "
    "Decode the text it came from correctly, or drop the character."
)


# -- to_json_value refuses what PostgreSQL's jsonb cannot hold -------------------------------


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("x\x00y", "in the value itself"),
        ({"text": "x\x00y"}, "at ['text']"),
        ({"a": [1, {"b": "\x00"}]}, "at ['a'][1]['b']"),
        ({"a": {"x\x00y": 1}}, "in the key 'x\\x00y' of ['a']"),
        ({"x\x00": 1}, "in the key 'x\\x00' of the top-level dict"),
    ],
)
def test_nul_is_refused_saying_why_and_where(value, where):
    with pytest.raises(PayloadError) as caught:
        to_json_value(value, "The input")
    assert str(caught.value) == "The input " + NUL_TEXT.format(where=where)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("\ud800", "in the value itself"),
        (["ok", {"b": "a\udfffb"}], "at [1]['b']"),
        ({"k\ud83d": 1}, "in the key 'k\\ud83d' of the top-level dict"),
    ],
)
def test_lone_surrogates_are_refused_saying_why_and_where(value, where):
    with pytest.raises(PayloadError) as caught:
        to_json_value(value, "The result")
    assert str(caught.value) == "The result " + SURROGATE_TEXT.format(where=where)


def test_text_that_only_looks_like_an_escape_and_real_unicode_are_kept():
    value = {"backslash": "a\\u0000b", "emoji": "😀 café", "\\u0000": "\\\\u0000"}
    assert to_json_value(value, "x") == value


def test_integers_longer_than_postgresql_numeric_are_refused():
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # Python's own limit would refuse them first
    try:
        with pytest.raises(PayloadError, match=r"contains an integer at \['n'\] of more than"):
            to_json_value({"n": 10**131072}, "The input")
        assert to_json_value({"n": 10**131071}, "The input") == {"n": 10**131071}
    finally:
        sys.set_int_max_str_digits(previous)


def test_floats_read_back_as_postgresql_returns_them():
    # jsonb keeps 1e+16 as the numeric 10000000000000000, which reads back as an int: the
    # first run must see what every replay will see.
    value = to_json_value({"big": 1e16, "huge": 1.5e300, "small": 1e-05, "plain": 2.5}, "x")
    assert value == {"big": 10**16, "huge": 15 * 10**299, "small": 1e-05, "plain": 2.5}
    assert isinstance(value["big"], int) and isinstance(value["small"], float)
    assert to_json_value("1e+16 in text", "x") == "1e+16 in text"


def _nested(levels: int, in_dict: bool = False) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = {"k": value} if in_dict else [value]
    return value


@pytest.mark.parametrize("in_dict", [False, True])
def test_nesting_has_a_fixed_limit_whatever_the_stack(in_dict):
    assert to_json_value(_nested(200, in_dict), "The input") == _nested(200, in_dict)
    for levels in (201, 100_000):
        with pytest.raises(PayloadError, match="nested more than 200 levels deep"):
            to_json_value(_nested(levels, in_dict), "The input")
    assert to_json_value(["[[[[" * 100, {"k": "{{" * 300}], "x") == [
        "[[[[" * 100,
        {"k": "{{" * 300},
    ]


def test_keys_that_become_one_json_key_are_refused():
    with pytest.raises(PayloadError, match="become the same JSON key"):
        to_json_value({1: "a", "1": "b"}, "The input")
    assert to_json_value({1: "a", 2: "b"}, "x") == {"1": "a", "2": "b"}


def test_floats_stored_and_read_back_are_what_the_workflow_saw():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    send_signal(execution_id, "item", {"big": 1e20})
    stored = PendingSignal.objects.get().payload
    assert stored == {"big": 10**20} and isinstance(stored["big"], int)


def test_check_text_refuses_nul_and_surrogates_in_names():
    assert check_text("fine", "The name") == "fine"
    with pytest.raises(PayloadError, match=r"The name 'a\\x00' contains a NUL character"):
        check_text("a\x00", "The name")
    with pytest.raises(PayloadError, match=r"The name 'a\\udc00' contains a lone surrogate"):
        check_text("a\udc00", "The name")


# -- errors are always storable ------------------------------------------------------------


def test_errors_are_made_storable():
    error = storable_error(
        {"type": "T", "message": "a\x00b\ud800c", "traceback": "x" * (MAX_ERROR_TEXT * 2)}
    )
    assert error["message"] == "a\\x00b\\ud800c"
    assert len(error["traceback"]) < MAX_ERROR_TEXT + 100
    assert "characters cut" in error["traceback"]
    assert to_json_value(error, "The error") == error


def test_an_exception_whose_str_raises_is_still_described():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert describe_exception(Hostile())["message"] == "<Hostile: str() failed>"
    assert describe_exception(ValueError("bad \x00 \udc80"))["message"] == "bad \\x00 \\udc80"


# -- the public API refuses such input and writes nothing ----------------------------------


def test_start_with_nul_in_the_input_is_refused_and_writes_nothing():
    with pytest.raises(PayloadError) as caught:
        start_workflow("testapp.collect_signals", count="a\x00b")
    assert str(caught.value) == (
        "The input of workflow 'testapp.collect_signals' " + NUL_TEXT.format(where="at ['count']")
    )
    with pytest.raises(PayloadError, match="The workflow_id 'id\\\\x00' contains a NUL"):
        start_workflow("testapp.collect_signals", workflow_id="id\x00", count=1)
    assert not WorkflowExecution.objects.exists()
    assert not HistoryEvent.objects.exists()


def test_signals_and_cancels_with_nul_are_refused_and_write_nothing():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    version = WorkflowExecution.objects.get().inbox_version
    with pytest.raises(PayloadError, match="The payload of signal 'item' contains a NUL"):
        send_signal(execution_id, "item", ["a\x00"])
    with pytest.raises(PayloadError, match="The signal name 'it\\\\x00em' contains a NUL"):
        send_signal(execution_id, "it\x00em", 1)
    with pytest.raises(PayloadError, match=r"The cancel reason .*contains a lone surrogate"):
        cancel_workflow(execution_id, "\udc80")
    assert not PendingSignal.objects.exists()
    execution = WorkflowExecution.objects.get()
    assert (execution.inbox_version, execution.cancel_requested) == (version, False)


def test_an_activity_returning_nul_fails_its_attempt_not_the_worker(monkeypatch):
    name = "testapp.record_effect"
    monkeypatch.setitem(
        register.activities,
        name,
        ActivityDefinition(
            name, lambda effect: "x\x00y", False, retry_policy=RetryPolicy(maximum_attempts=1)
        ),
    )
    with pytest.raises(WorkflowFailed) as caught:
        run_workflow("testapp.one_effect", name="nul")
    assert caught.value.message == (
        f"Activity {name!r} failed: django_durable.exceptions.PayloadError: The result of "
        f"activity {name!r} " + NUL_TEXT.format(where="in the value itself")
    )
    assert ActivityTask.objects.get().status == ActivityStatus.FAILED


# -- a refusal while recording is permanent ------------------------------------------------


def running_activity():
    """An add_twice execution whose first activity attempt is claimed by "w1"."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    [claim] = store.claim_workflow_tasks("w0", 1)
    scheduled = Event(
        EventKind.ACTIVITY_SCHEDULED,
        1,
        "testapp.add",
        {"args": [1, 2], "kwargs": {}, "options": {}, "queue": "default"},
    )
    store.record_workflow_task(claim, history_length=1, events=[scheduled])
    [task] = store.claim_activity_tasks("w1", 1)
    return execution_id, task


@postgres_only
def test_a_result_the_database_refuses_fails_the_attempt_for_good():
    execution_id, task = running_activity()
    # As if the check were bypassed: PostgreSQL itself refuses the value.
    assert settle_activity(task, {"result": "x\x00y"}) is True
    row = ActivityTask.objects.get()
    assert (row.status, row.lease_owner, row.lease_until) == (ActivityStatus.FAILED, "", None)
    assert row.error["type"] == "django.db.utils.DataError"
    assert row.error["message"].startswith(
        "The database refused to store the result of activity 'testapp.add' attempt 1 "
        "(django.db.utils.DataError: unsupported Unicode escape sequence"
    )
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.wake_at is not None  # the workflow hears of the failure
    assert store.claim_activity_tasks("w2", 1, now=timezone.now() + LEASE * 2) == []


@postgres_only
def test_an_error_the_database_refuses_is_recorded_as_plain_text_and_final():
    _, task = running_activity()
    raw = {"type": "builtins.ValueError", "message": "bad \x00", "traceback": "\ud800"}
    assert settle_activity(task, {"error": raw}) is True  # retryable, but refused: final
    row = ActivityTask.objects.get()
    assert row.status == ActivityStatus.FAILED
    assert row.error["message"].endswith(
        "; the attempt failed with builtins.ValueError: bad \\x00."
    )


def test_parking_stores_any_error():
    start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 1)
    store.park_execution(claim, {"type": "T", "message": "a\x00b", "traceback": "\udc80"})
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.BLOCKED
    assert execution.error == {"type": "T", "message": "a\\x00b", "traceback": "\\udc80"}


def test_a_failing_workflow_with_an_unstorable_error_is_recorded():
    start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 1)
    failed = Event(EventKind.WORKFLOW_FAILED, data={"error": {"type": "T", "message": "\x00"}})
    store.record_workflow_task(claim, history_length=1, events=[failed])
    execution = WorkflowExecution.objects.get()
    assert (execution.status, execution.error["message"]) == (ExecutionStatus.FAILED, "\\x00")


@postgres_only
def test_a_workflow_task_the_database_refuses_can_still_be_parked():
    start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 1)
    bad = Event(EventKind.SIGNAL_RECEIVED, name="a\x00", data={"payload": None})
    with pytest.raises(DataError) as caught:
        store.record_workflow_task(claim, history_length=1, events=[bad])
    assert HistoryEvent.objects.count() == 1  # all or nothing
    store.park_execution(claim, describe_exception(caught.value))
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.BLOCKED
    assert execution.error["type"] == "django.db.utils.DataError"
    assert execution.lease_owner == ""
