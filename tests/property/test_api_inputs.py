"""Bad input, systematically: the public API fed arbitrary values, in its sync and async forms.

Every bad value gets one `DurableError` (`InvalidArgument`, `PayloadError`,
`WorkflowNotFound`) and leaves the database as it was; every good value is stored as given.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import override_settings
from hypothesis import example, given
from hypothesis import strategies as st

from django_durable import (
    InvalidArgument,
    PayloadError,
    WaitTimeout,
    WorkflowNotFound,
    cancel_workflow,
    run_workflow,
    send_signal,
    start_workflow,
    wait_workflow,
)
from django_durable.constants import EventKind
from django_durable.models import PendingSignal, WorkflowExecution
from django_durable.runtime.instance import MAX_DURATION_SECONDS

from .strategies import (
    STORABLE_CHARACTERS,
    as_stored,
    bad_names,
    bad_policies,
    bad_seconds,
    bad_wait_seconds,
    json_size,
    json_values,
    malformed_execution_ids,
    names,
    nested,
    not_execution_ids,
    not_json,
    not_text,
    storable_text,
    unknown_execution_ids,
    unstorable_json,
    unstorable_text,
    workflow_inputs,
)
from .support import database_state, examples, invoke, refused

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FORMS = st.sampled_from(["sync", "async"])  # as sync code calls it, or awaited
STARTS = st.sampled_from([start_workflow, run_workflow])
NAME_LENGTH = 200  # the name and id columns' max_length


def small_payload_limit(limit: int):
    return override_settings(DURABLE={**django_settings.DURABLE, "MAX_PAYLOAD_BYTES": limit})


def depth_of(value) -> int:
    """How deeply a `nested()` value nests, walked without recursion."""
    depth = 0
    while value:
        value = value["k"] if isinstance(value, dict) else value[0]
        depth += 1
    return depth


def in_fresh_thread(call: Callable[[], Any]) -> Any:
    """Run `call` at the bottom of a new thread's stack, as a script or a server thread would:
    far more of Python's recursion limit is left there than inside a test (or a worker)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- start_workflow: what is good is stored as given -----------------------------------------


@examples(60)
@given(form=FORMS, inputs=workflow_inputs)
def test_any_json_input_is_stored_as_given(echo_workflow, form, inputs):
    execution_id = invoke(form, start_workflow, echo_workflow, **inputs)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert as_stored(execution.input) == as_stored(inputs)
    started = execution.history.get()
    assert started.kind == EventKind.WORKFLOW_STARTED
    assert as_stored(started.data["input"]) == as_stored(inputs)


@examples(25)
@given(workflow_id=names(NAME_LENGTH), inputs=workflow_inputs)
def test_any_storable_workflow_id_starts_one_execution(echo_workflow, workflow_id, inputs):
    first = start_workflow(echo_workflow, workflow_id=workflow_id, **inputs)
    again = start_workflow(echo_workflow, workflow_id=workflow_id, **inputs)
    assert first == again
    assert list(WorkflowExecution.objects.filter(pk=first).values_list("workflow_id")) == [
        (workflow_id,)
    ]


@examples(20)
@given(seconds=st.floats(min_value=1e-3, max_value=MAX_DURATION_SECONDS) | st.integers(1, 10**9))
def test_any_finite_execution_timeout_is_accepted(echo_workflow, seconds):
    execution_id = start_workflow(echo_workflow, execution_timeout=seconds)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.timeout_at is not None
    assert execution.history.get().data["timeout"] == pytest.approx(seconds)


def test_every_nesting_depth_is_refused_or_stored_so_that_anyone_can_read_it(echo_workflow):
    """Started from a shallow stack, a deeply nested value must be refused with a
    PayloadError, or stored so that a deeper stack (a worker's) can read it back: never a
    raw RecursionError on either side. Every depth around Python's recursion limit (1000
    frames) is tried, lists and dicts in turn: where the limit bites depends on how deep
    the caller's stack is."""
    failures = []
    for depth in [*range(800, 1_050), 10_000]:
        value = nested(depth, in_dict=depth % 2 == 1)
        before = database_state()
        try:
            execution_id = in_fresh_thread(
                lambda value=value: start_workflow(echo_workflow, value=value)
            )
            stored = WorkflowExecution.objects.get(pk=execution_id).input["value"]
            assert depth_of(stored) == depth
        except PayloadError as exc:
            if database_state() != before:
                failures.append(f"depth {depth}: refused ({exc}) but left rows behind")
        except RecursionError as exc:
            failures.append(f"depth {depth}: RecursionError: {exc}")
    assert failures == []


# -- start_workflow: what is bad is refused, and writes nothing -------------------------------


@examples(40)
@given(form=FORMS, call=STARTS, inputs=workflow_inputs, key=storable_text, bad=not_json)
def test_non_json_input_is_refused(echo_workflow, form, call, inputs, key, bad):
    inputs[key] = bad
    refused(lambda: invoke(form, call, echo_workflow, **inputs), PayloadError)


@examples(30)
@given(form=FORMS, inputs=workflow_inputs, key=storable_text, bad=unstorable_json)
def test_nul_and_lone_surrogates_in_input_are_refused(echo_workflow, form, inputs, key, bad):
    inputs[key] = bad
    error = refused(lambda: invoke(form, start_workflow, echo_workflow, **inputs), PayloadError)
    assert "NUL" in str(error) or "surrogate" in str(error)


@examples(20)
@given(key=unstorable_text, value=json_values)
def test_nul_and_lone_surrogates_in_argument_names_are_refused(echo_workflow, key, value):
    refused(lambda: start_workflow(echo_workflow, **{key: value}), PayloadError)


@examples(20)
@given(
    key=st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none(),
    first=json_values,
    second=json_values,
)
@example(key=1, first="a", second="b")
def test_keys_that_collide_once_written_as_json_are_refused(echo_workflow, key, first, second):
    """{1: a, "1": b} would be stored as {"1": b}: one value silently lost."""
    (written,) = json.loads(json.dumps({key: None}))  # the key as JSON writes it
    refused(
        lambda: start_workflow(echo_workflow, value={key: first, written: second}), PayloadError
    )


@examples(30)
@given(text=st.text(STORABLE_CHARACTERS, min_size=950, max_size=1050))
def test_input_is_refused_exactly_when_over_the_payload_limit(echo_workflow, text):
    with small_payload_limit(1000):
        if json_size({"value": text}) > 1000:
            refused(
                lambda: start_workflow(echo_workflow, value=text),
                PayloadError,
                message="over the 1000-byte limit",
            )
        else:
            execution_id = start_workflow(echo_workflow, value=text)
            assert WorkflowExecution.objects.get(pk=execution_id).input == {"value": text}


def test_input_over_the_default_payload_limit_is_refused(echo_workflow):
    limit = 2 * 1024 * 1024
    refused(
        lambda: start_workflow(echo_workflow, value="x" * limit),
        PayloadError,
        message=f"over the {limit}-byte limit",
    )


@examples(30)
@given(form=FORMS, call=STARTS, name=st.text(max_size=NAME_LENGTH + 20))
def test_unknown_workflow_name_is_refused(form, call, name):
    refused(lambda: invoke(form, call, name), WorkflowNotFound, InvalidArgument)


@examples(20)
@given(workflow=not_text.filter(lambda value: not isinstance(value, str)))
def test_workflow_that_is_neither_a_name_nor_a_function_is_refused(workflow):
    refused(lambda: start_workflow(workflow), InvalidArgument)


def test_unregistered_function_is_refused():
    def not_a_workflow(ctx):
        return None

    refused(lambda: start_workflow(not_a_workflow), WorkflowNotFound, message="not a registered")


@examples(30)
@given(inputs=workflow_inputs)
def test_input_that_does_not_fit_the_parameters_is_refused(inputs):
    if set(inputs) == {"a", "b"}:
        start_workflow("testapp.add_twice", **inputs)  # values are the workflow's business
    else:
        refused(
            lambda: start_workflow("testapp.add_twice", **inputs),
            InvalidArgument,
            message="Bad input for workflow 'testapp.add_twice'",
        )


@examples(30)
@given(form=FORMS, workflow_id=bad_names(NAME_LENGTH).filter(lambda value: value is not None))
def test_bad_workflow_id_is_refused(echo_workflow, form, workflow_id):
    refused(
        lambda: invoke(form, start_workflow, echo_workflow, workflow_id=workflow_id),
        InvalidArgument,
        PayloadError,
    )


@examples(20)
@given(policy=bad_policies)
def test_unknown_id_reuse_policy_is_refused(echo_workflow, policy):
    refused(
        lambda: start_workflow(echo_workflow, workflow_id="order-1", id_reuse_policy=policy),
        InvalidArgument,
        message="id_reuse_policy must be one of",
    )


@examples(30)
@given(form=FORMS, seconds=bad_seconds)
def test_bad_execution_timeout_is_refused(echo_workflow, form, seconds):
    refused(
        lambda: invoke(form, start_workflow, echo_workflow, execution_timeout=seconds),
        InvalidArgument,
        message="execution_timeout must be",
    )


# -- execution ids: wait_workflow, send_signal, cancel_workflow ------------------------------


CALLS_BY_ID = {
    "wait": lambda execution_id: wait_workflow(execution_id, timeout=0),
    "signal": lambda execution_id: send_signal(execution_id, "go", {"ok": True}),
    "cancel": lambda execution_id: cancel_workflow(execution_id, "because"),
}


@examples(40)
@given(
    call=st.sampled_from(list(CALLS_BY_ID)),
    form=FORMS,
    execution_id=unknown_execution_ids | malformed_execution_ids,
)
def test_unknown_or_malformed_execution_id_is_not_found(
    running_execution, call, form, execution_id
):
    error = refused(lambda: invoke(form, CALLS_BY_ID[call], execution_id), WorkflowNotFound)
    assert str(error).startswith("No workflow execution has the id ")


@examples(25)
@given(call=st.sampled_from(list(CALLS_BY_ID)), execution_id=not_execution_ids)
def test_execution_id_of_the_wrong_type_is_refused(running_execution, call, execution_id):
    refused(
        lambda: CALLS_BY_ID[call](execution_id),
        InvalidArgument,
        message="execution_id must be a UUID or its text",
    )


# -- wait_workflow ---------------------------------------------------------------------------


@examples(20)
@given(form=FORMS, timeout=bad_wait_seconds)
def test_bad_wait_timeout_is_refused_at_once(running_execution, form, timeout):
    refused(
        lambda: invoke(form, wait_workflow, running_execution, timeout=timeout),
        InvalidArgument,
        message="timeout must be",
    )


@examples(15)
@given(poll=bad_wait_seconds | st.just(0))
def test_bad_poll_interval_is_refused_at_once(running_execution, poll):
    refused(
        lambda: wait_workflow(running_execution, timeout=1, poll=poll),
        InvalidArgument,
        message="poll must be",
    )


@examples(10)
@given(timeout=st.floats(0, 0.05), poll=st.floats(1e-3, 1e6))
def test_wait_never_outlasts_its_timeout(running_execution, timeout, poll):
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_workflow(running_execution, timeout=timeout, poll=poll)
    assert time.monotonic() - started < 2


# -- send_signal -----------------------------------------------------------------------------


@examples(30)
@given(name=names(NAME_LENGTH), payload=json_values)
def test_any_signal_name_and_json_payload_is_queued_as_given(running_execution, name, payload):
    send_signal(running_execution, name, payload)
    signal = PendingSignal.objects.latest("pk")
    assert signal.execution_id == running_execution
    assert signal.name == name
    assert as_stored(signal.payload) == as_stored(payload)


@examples(30)
@given(form=FORMS, name=bad_names(NAME_LENGTH))
def test_bad_signal_name_is_refused(running_execution, form, name):
    refused(
        lambda: invoke(form, send_signal, running_execution, name, None),
        InvalidArgument,
        PayloadError,
    )


@examples(30)
@given(form=FORMS, payload=not_json | unstorable_json)
def test_bad_signal_payload_is_refused(running_execution, form, payload):
    refused(lambda: invoke(form, send_signal, running_execution, "go", payload), PayloadError)


@examples(15)
@given(text=st.text(STORABLE_CHARACTERS, min_size=950, max_size=1050))
def test_signal_payload_is_refused_exactly_when_over_the_limit(running_execution, text):
    with small_payload_limit(1000):
        if json_size(text) > 1000:
            refused(lambda: send_signal(running_execution, "go", text), PayloadError)
        else:
            send_signal(running_execution, "go", text)
            assert PendingSignal.objects.latest("pk").payload == text


# -- cancel_workflow -------------------------------------------------------------------------


@examples(20)
@given(reason=st.text(STORABLE_CHARACTERS, max_size=300))
def test_any_storable_cancel_reason_is_recorded_as_given(reason):
    execution_id = start_workflow("testapp.collect_signals", count=1)
    cancel_workflow(execution_id, reason)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.cancel_requested
    assert execution.cancel_reason == reason


@examples(25)
@given(
    form=FORMS, reason=not_text.filter(lambda value: not isinstance(value, str)) | unstorable_text
)
def test_bad_cancel_reason_is_refused(running_execution, form, reason):
    refused(
        lambda: invoke(form, cancel_workflow, running_execution, reason),
        InvalidArgument,
        PayloadError,
    )


def test_cancel_reason_over_the_payload_limit_is_refused(running_execution):
    with small_payload_limit(1000):
        refused(lambda: cancel_workflow(running_execution, "x" * 1001), PayloadError)


# -- pinned examples: one of each kind, with its exact message --------------------------------


@pytest.mark.django_db  # nothing is written, so no table needs flushing afterwards
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: start_workflow("testapp.collect_signals", count=1, execution_timeout=math.nan),
            "execution_timeout must be a finite number of seconds, at most 3153600000, not nan.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, execution_timeout=10**400),
            "execution_timeout must be a finite number of seconds, at most 3153600000, "
            "not an integer that large.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, execution_timeout=-5),
            "execution_timeout must be more than 0 seconds, not -5.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, execution_timeout="5"),
            "execution_timeout must be a number of seconds, not str.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, workflow_id=42),
            "workflow_id must be a string, not int.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, workflow_id="x" * 201),
            "workflow_id must be 1 to 200 characters long, not 201.",
        ),
        (
            lambda: start_workflow("testapp.collect_signals", count=1, id_reuse_policy="never"),
            "id_reuse_policy must be one of 'return_existing', 'allow_duplicate', "
            "'allow_duplicate_failed_only', not 'never'.",
        ),
        (
            lambda: start_workflow(["testapp.collect_signals"], count=1),
            "workflow must be a registered workflow's name or function, not list.",
        ),
        (
            lambda: wait_workflow(uuid.uuid4(), timeout=math.nan),
            "timeout must be a finite number of seconds, not nan.",
        ),
        (
            lambda: wait_workflow(uuid.uuid4(), timeout=-1),
            "timeout must be 0 or more seconds, not -1.",
        ),
        (
            lambda: wait_workflow(b"\x00" * 16),
            "execution_id must be a UUID or its text, not bytes.",
        ),
        (
            lambda: send_signal(str(uuid.uuid4()), ""),
            "The signal name must be 1 to 200 characters long, not 0.",
        ),
        (
            lambda: send_signal(str(uuid.uuid4()), None),
            "The signal name must be a string, not NoneType.",
        ),
        (
            lambda: cancel_workflow(str(uuid.uuid4()), 5),
            "reason must be a string, not int.",
        ),
    ],
)
def test_each_refusal_says_what_to_pass(call, message):
    assert str(refused(call, InvalidArgument)) == message


@pytest.mark.django_db
def test_unstorable_workflow_id_is_a_payload_error(echo_workflow):
    for workflow_id in ["order\x00-1", "order-\ud800"]:
        refused(
            lambda id_=workflow_id: start_workflow(echo_workflow, workflow_id=id_), PayloadError
        )
