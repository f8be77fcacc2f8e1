"""`WorkflowExecution.waiting`: what each execution waits for, recorded by its workflow tasks
in the UPDATE that releases it; and the expected/found of a parked non-determinism error."""

from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_durable import WorkflowBlocked, register, send_signal, start_workflow, store
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine.workflow_task import run_workflow_tasks
from django_durable.models import WorkflowExecution
from django_durable.registry import WorkflowDefinition
from django_durable.runtime.events import Event

pytestmark = pytest.mark.django_db(transaction=True)

STARTED = Event(EventKind.WORKFLOW_TASK_STARTED, data={"time": 0.0})
SIGNAL_ITEM = {"kind": "signal", "name": "item"}
VERSIONED = "tests.waiting_versioned"


def run_tasks(now: datetime | None = None, owner: str = "w1") -> list:
    """Claim every due workflow task and run them as one batch, as a worker does."""
    claims = store.claim_workflow_tasks(owner, 10, now=now)
    return async_to_sync(run_workflow_tasks)(claims, now=now)


def waiting(execution_id):
    return WorkflowExecution.objects.get(pk=execution_id).waiting


def test_a_workflow_waiting_for_signals_records_it_and_its_end_records_nothing(drive):
    execution_id = start_workflow("testapp.collect_signals", count=2)
    assert waiting(execution_id) is None  # no workflow task has run yet
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    assert waiting(execution_id) == [SIGNAL_ITEM]
    send_signal(execution_id, "item", 1)
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    assert waiting(execution_id) == [SIGNAL_ITEM]
    send_signal(execution_id, "item", 2)
    assert drive(execution_id).status == ExecutionStatus.COMPLETED
    assert waiting(execution_id) == []


def test_one_batch_records_each_execution_what_it_waits_for():
    activity = start_workflow("testapp.add_twice", a=1, b=2)
    signal = start_workflow("testapp.collect_signals", count=1)
    timer = start_workflow("testapp.timer_probe", seconds=3600)
    parent = start_workflow("testapp.parent_waiting_on_child")
    failed = start_workflow("testapp.raises_directly")
    now = timezone.now()
    results = run_tasks(now)
    assert len(results) == 5 and not any(r.parked or r.lease_lost for r in results)
    assert waiting(activity) == [{"kind": "activity", "seq": 1, "name": "testapp.add"}]
    assert waiting(signal) == [SIGNAL_ITEM]
    [timer_wait] = waiting(timer)
    assert (timer_wait["kind"], timer_wait["seq"]) == ("timer", 1)
    assert timer_wait["until"].endswith("+00:00")
    fire_at = datetime.fromisoformat(timer_wait["until"])
    assert abs(fire_at - (now + timedelta(seconds=3600))) < timedelta(milliseconds=1)
    child = WorkflowExecution.objects.get(parent_id=parent)
    assert waiting(parent) == [
        {
            "kind": "child",
            "seq": 1,
            "name": "testapp.collect_signals",
            "execution_id": str(child.pk),
        }
    ]
    assert WorkflowExecution.objects.get(pk=failed).status == ExecutionStatus.FAILED
    assert waiting(failed) == []
    assert stored_json_types() == ["array"] * 5  # JSON arrays, not strings holding JSON


def stored_json_types() -> list[str]:
    """The JSON type of each stored `waiting`, as the database itself sees it."""
    type_of = "jsonb_typeof" if connection.vendor == "postgresql" else "json_type"
    table = WorkflowExecution._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT {type_of}("waiting") FROM "{table}" WHERE "parent_id" IS NULL')
        return [kind for (kind,) in cursor.fetchall()]


def test_a_batch_whose_executions_all_wait_alike_records_it_for_each():
    ids = [start_workflow("testapp.collect_signals", count=1) for _ in range(3)]
    run_tasks()
    assert [waiting(pk) for pk in ids] == [[SIGNAL_ITEM]] * 3


def test_a_record_without_waits_leaves_the_stored_value_as_it_is():
    kept, written = (start_workflow("testapp.collect_signals", count=1) for _ in range(2))
    run_tasks()
    for pk in (kept, written):
        send_signal(pk, "other")  # due again
    claims = {claim.execution_id: claim for claim in store.claim_workflow_tasks("w1", 10)}
    records = [
        store.TaskRecord(claims[kept], 2, [STARTED]),
        store.TaskRecord(claims[written], 2, [STARTED], waiting=[{"kind": "signal", "name": "x"}]),
    ]
    assert not any(r.lost for r in store.record_workflow_tasks(records))
    assert waiting(kept) == [SIGNAL_ITEM]
    assert waiting(written) == [{"kind": "signal", "name": "x"}]


def test_a_timed_out_execution_waits_for_nothing():
    execution_id = start_workflow("testapp.slow_with_default_timeout")  # 30 s, sleeps an hour
    now = timezone.now()
    run_tasks(now)
    assert [w["kind"] for w in waiting(execution_id)] == ["timer"]
    run_tasks(now + timedelta(seconds=31))
    assert WorkflowExecution.objects.get(pk=execution_id).status == ExecutionStatus.TIMED_OUT
    assert waiting(execution_id) == []


def test_what_it_waits_for_rides_in_the_update_that_releases_the_execution():
    ids = [start_workflow("testapp.collect_signals", count=1) for _ in range(2)]
    claims = {claim.execution_id: claim for claim in store.claim_workflow_tasks("w1", 10)}
    records = [
        store.TaskRecord(claims[ids[0]], 1, [STARTED], waiting=[SIGNAL_ITEM]),
        store.TaskRecord(claims[ids[1]], 1, [STARTED], waiting=[{"kind": "signal", "name": "x"}]),
    ]
    with CaptureQueriesContext(connection) as queries:
        store.record_workflow_tasks(records)
    table = WorkflowExecution._meta.db_table
    updates = [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')]
    assert len(updates) == 1 and '"waiting"' in updates[0]
    assert [waiting(pk) for pk in ids] == [[SIGNAL_ITEM], [{"kind": "signal", "name": "x"}]]


def park_on_a_renamed_activity(monkeypatch):
    """Record add_twice's first task, deploy code that renamed its activity, and run the
    next task; returns the execution, parked."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    run_tasks()

    async def changed(ctx, a, b):
        return await ctx.run_activity("testapp.async_double", a)

    monkeypatch.setitem(
        register.workflows,
        "testapp.add_twice",
        WorkflowDefinition("testapp.add_twice", changed, True),
    )
    [task] = store.claim_activity_tasks("w1", 10)
    store.complete_activity_task(task, result=3)
    [result] = run_tasks()
    assert result.parked
    return WorkflowExecution.objects.get(pk=execution_id)


def test_a_parked_non_determinism_error_says_what_history_expected_and_what_was_found(
    monkeypatch,
):
    execution = park_on_a_renamed_activity(monkeypatch)
    assert execution.status == ExecutionStatus.BLOCKED
    error = execution.error
    assert set(error) == {"type", "message", "traceback", "expected", "found"}
    assert error["type"] == "django_durable.exceptions.NonDeterminismError"
    assert error["expected"] == "activity scheduled 'testapp.add' (command #1)"
    assert error["found"] == "activity scheduled 'testapp.async_double' (command #1)"
    assert error["expected"] in error["message"] and error["found"] in error["message"]
    # What it waits for stays as its last recorded task left it.
    assert execution.waiting == [{"kind": "activity", "seq": 1, "name": "testapp.add"}]


@register.workflow(name=VERSIONED)
def versioned_v1(ctx) -> None:
    ctx.wait_signal("go")


def versioned_v2(ctx) -> None:  # supports only version 1: history has no marker
    ctx.get_version("step", 1, 1)
    ctx.wait_signal("go")


def test_a_non_determinism_error_that_compared_no_commands_parks_with_none_of_them(
    monkeypatch,
):
    execution_id = start_workflow(VERSIONED)
    run_tasks()
    monkeypatch.setitem(
        register.workflows, VERSIONED, WorkflowDefinition(VERSIONED, versioned_v2, False)
    )
    send_signal(execution_id, "go")
    [result] = run_tasks()
    assert "get_version('step') found no marker" in result.parked
    error = WorkflowExecution.objects.get(pk=execution_id).error
    assert error["type"] == "django_durable.exceptions.NonDeterminismError"
    assert (error["expected"], error["found"]) == (None, None)


def test_an_execution_parked_for_another_reason_has_no_comparison(monkeypatch):
    execution_id = start_workflow("testapp.collect_signals", count=1)
    monkeypatch.delitem(register.workflows, "testapp.collect_signals")
    [result] = run_tasks()
    assert result.parked
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.status == ExecutionStatus.BLOCKED
    assert set(execution.error) == {"type", "message", "traceback"}
    assert execution.waiting is None
