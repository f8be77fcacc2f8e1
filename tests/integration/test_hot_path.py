"""The hot path's store operations: batched records, local dispatch, local continuation,
set-based writes. Each keeps the guarantees of the one-at-a-time path it replaces."""

import dataclasses
from datetime import timedelta

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_durable import start_workflow, store
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from django_durable.runtime.events import Event
from django_durable.store.sets import insert_rows, locked_rows, update_each

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = timedelta(seconds=3)  # tests.settings sets DURABLE["LEASE_SECONDS"] = 3
STARTED = Event(EventKind.WORKFLOW_TASK_STARTED, data={"time": 0.0})


def scheduled(seq: int = 1) -> Event:
    return Event(
        EventKind.ACTIVITY_SCHEDULED,
        seq,
        "testapp.add",
        {"args": [1, 2], "kwargs": {}, "options": {}, "queue": "default"},
    )


def history_length(execution_id) -> int:
    return HistoryEvent.objects.filter(execution_id=execution_id).count()


def test_a_batch_records_every_task_but_the_one_whose_lease_was_lost():
    ids = [start_workflow("testapp.collect_signals", count=1) for _ in range(3)]
    now = timezone.now()
    claims = store.claim_workflow_tasks("w1", 10, now=now)
    by_id = {claim.execution_id: claim for claim in claims}
    later = now + LEASE * 2
    store.claim_workflow_tasks("w2", 1, now=later, execution_ids=[ids[1]])  # takes it over
    records = [store.TaskRecord(by_id[pk], 1, [STARTED]) for pk in ids]
    results = store.record_workflow_tasks(records, now=later)
    assert [result.lost for result in results] == [False, True, False]
    assert [history_length(pk) for pk in ids] == [2, 1, 2]
    rows = {row.pk: row for row in WorkflowExecution.objects.all()}
    assert (rows[ids[0]].lease_owner, rows[ids[2]].lease_owner) == ("", "")
    assert rows[ids[1]].lease_owner == "w2"  # the new owner's lease is untouched


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL refuses NUL")
def test_a_batch_the_database_refuses_writes_nothing_at_all():
    ids = [start_workflow("testapp.collect_signals", count=1) for _ in range(2)]
    claims = {c.execution_id: c for c in store.claim_workflow_tasks("w1", 10)}
    bad = Event(EventKind.SIGNAL_RECEIVED, name="a\x00", data={"payload": None})
    records = [
        store.TaskRecord(claims[ids[0]], 1, [STARTED]),
        store.TaskRecord(claims[ids[1]], 1, [STARTED, bad]),
    ]
    with pytest.raises(DataError):
        store.record_workflow_tasks(records)
    assert [history_length(pk) for pk in ids] == [1, 1]
    assert set(WorkflowExecution.objects.values_list("lease_owner", flat=True)) == {"w1"}


def test_activities_scheduled_here_are_inserted_leased_to_this_worker():
    execution_id = start_workflow("testapp.fan_out", n=2)
    [claim] = store.claim_workflow_tasks("w1", 1)
    record = store.TaskRecord(
        claim, 1, [STARTED, scheduled(1), scheduled(2)], leased_activity_seqs={1}
    )
    [result] = store.record_workflow_tasks([record])
    [leased] = result.activities
    row = ActivityTask.objects.get(pk=leased.task_id)
    assert (leased.execution_id, leased.command_seq, leased.attempt) == (execution_id, 1, 1)
    assert (row.status, row.attempt, row.lease_owner) == (ActivityStatus.RUNNING, 1, "w1")
    # Nobody else claims it; the other one is queued for anyone.
    [other] = store.claim_activity_tasks("w2", 10)
    assert other.command_seq == 2


def _recorded_activity(owner="w1"):
    """A fan_out execution with one activity leased to `owner` by its own workflow task."""
    execution_id = start_workflow("testapp.fan_out", n=1)
    [claim] = store.claim_workflow_tasks(owner, 1)
    record = store.TaskRecord(claim, 1, [STARTED, scheduled(1)], leased_activity_seqs={1})
    [result] = store.record_workflow_tasks([record])
    return execution_id, claim, result.activities[0]


def test_an_outcome_hands_the_next_task_to_the_worker_holding_the_workflow():
    execution_id, claim, activity = _recorded_activity()
    outcome = store.ActivityOutcome(activity, ActivityStatus.COMPLETED, result=3)
    done = store.record_activity_outcomes([outcome], continue_here={execution_id})
    assert done.recorded == [True]
    [continued] = done.continued
    assert (continued.execution_id, continued.epoch) == (execution_id, claim.epoch + 1)
    [(_, event)] = done.inputs.inboxes[execution_id].activity_outcomes
    assert (event.kind, event.data) == (EventKind.ACTIVITY_COMPLETED, {"result": 3})
    execution = WorkflowExecution.objects.get()
    assert (execution.lease_owner, execution.epoch) == ("w1", continued.epoch)
    assert store.claim_workflow_tasks("w2", 10) == []  # it is leased here


def test_an_outcome_for_a_workflow_held_elsewhere_wakes_it_for_anyone():
    execution_id, _, activity = _recorded_activity()
    outcome = store.ActivityOutcome(activity, ActivityStatus.COMPLETED, result=3)
    done = store.record_activity_outcomes([outcome], continue_here=set())
    assert (done.recorded, done.continued) == ([True], [])
    [claim] = store.claim_workflow_tasks("w2", 10)
    assert claim.execution_id == execution_id


def test_a_stale_attempt_is_discarded_and_its_neighbour_in_the_batch_recorded():
    first_id, _, first = _recorded_activity()
    second_id, _, second = _recorded_activity()
    # The first attempt's lease lapsed and another worker runs it again.
    store.claim_activity_tasks("w2", 10, now=timezone.now() + LEASE * 2, execution_ids=[first_id])
    outcomes = [
        store.ActivityOutcome(first, ActivityStatus.COMPLETED, result=1),
        store.ActivityOutcome(second, ActivityStatus.COMPLETED, result=2),
    ]
    done = store.record_activity_outcomes(outcomes)
    rows = {row.execution_id: row for row in ActivityTask.objects.all()}
    assert done.recorded == [False, True]
    assert (rows[first_id].status, rows[first_id].attempt) == (ActivityStatus.RUNNING, 2)
    assert (rows[second_id].status, rows[second_id].result) == (ActivityStatus.COMPLETED, 2)


def test_a_retry_is_recorded_with_its_due_time_and_wakes_no_workflow():
    execution_id, _, activity = _recorded_activity()
    due = timezone.now() + timedelta(seconds=5)
    error = {"type": "builtins.ValueError", "message": "again"}
    outcome = store.ActivityOutcome(activity, ActivityStatus.QUEUED, error=error, retry_at=due)
    done = store.record_activity_outcomes([outcome], continue_here={execution_id})
    assert (done.recorded, done.continued) == ([True], [])
    row = ActivityTask.objects.get()
    assert (row.status, row.due_at, row.error, row.lease_owner) == ("queued", due, error, "")
    assert WorkflowExecution.objects.get().wake_at is None


def test_update_each_gives_every_row_its_own_values_and_leaves_the_rest():
    ids = [start_workflow("testapp.collect_signals", count=1) for _ in range(3)]
    at = timezone.now().replace(microsecond=123456)
    values = [{"a": [1, "b"], "c": None}, "text", None]
    changes = {
        ids[0]: {"result": values[0], "wake_at": at},
        ids[1]: {"result": values[1], "wake_at": None},
    }
    assert update_each(WorkflowExecution, changes, {"cancel_reason": "x"}) == 2
    rows = {row.pk: row for row in WorkflowExecution.objects.all()}
    assert (rows[ids[0]].result, rows[ids[0]].wake_at) == (values[0], at)
    assert (rows[ids[1]].result, rows[ids[1]].wake_at) == (values[1], None)
    assert [rows[pk].cancel_reason for pk in ids] == ["x", "x", ""]
    assert rows[ids[2]].wake_at is not None  # not in `changes`: untouched
    assert set(locked_rows(WorkflowExecution, ids[:2], "epoch")) == set(ids[:2])


def test_insert_rows_returns_the_new_keys_in_order():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    now = timezone.now()
    rows = [
        {
            "execution": execution_id,
            "sequence": sequence,
            "kind": EventKind.SIGNAL_RECEIVED,
            "command_seq": None,
            "name": "item",
            "data": {"payload": [sequence, "é"]},
            "created_at": now,
        }
        for sequence in (2, 3)
    ]
    keys = insert_rows(HistoryEvent, rows, returning=True)
    stored = {event.pk: event for event in HistoryEvent.objects.filter(pk__in=keys)}
    assert [stored[pk].sequence for pk in keys] == [2, 3]
    assert stored[keys[1]].data == {"payload": [3, "é"]}
    assert WorkflowExecution.objects.get().status == ExecutionStatus.RUNNING


def test_a_parent_and_its_child_recorded_together_are_locked_parent_first():
    ids = sorted(start_workflow("testapp.collect_signals", count=1) for _ in range(2))
    child_id, parent_id = ids  # the child's key sorts first: primary-key order alone fails
    claims = {c.execution_id: c for c in store.claim_workflow_tasks("w1", 10)}
    child = dataclasses.replace(claims[child_id], parent_id=parent_id)
    records = [
        store.TaskRecord(child, 1, [STARTED]),
        store.TaskRecord(claims[parent_id], 1, [STARTED]),
    ]
    with CaptureQueriesContext(connection) as queries:
        results = store.record_workflow_tasks(records)
    assert [result.lost for result in results] == [False, False]
    table = WorkflowExecution._meta.db_table
    locks = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and table in q["sql"]]
    order = [next(i for i, sql in enumerate(locks) if pk.hex in sql) for pk in ids]
    assert order[1] < order[0]  # the parent's row was read (and locked) first
