"""Many workers on one database: store transactions lock rows in one order, so concurrent
ones never deadlock, and every change another worker must act on sends it a NOTIFY.

The deadlock tests replay, with real transactions on their own connections, the
interleavings that deadlocked when two code paths locked the same rows in opposite orders.
"""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_durable import start_workflow, store
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import ActivityTask, WorkflowExecution
from django_durable.runtime.events import Event
from django_durable.store.db import alias
from tests.integration.test_hot_path import scheduled

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="row locks and NOTIFY are PostgreSQL's"
    ),
]

STARTED = Event(EventKind.WORKFLOW_TASK_STARTED, data={"time": 0})
COMPLETED = Event(EventKind.WORKFLOW_COMPLETED, data={"result": "done"})


def running_activity():
    """An execution waiting for its activity, whose attempt "w1" runs; returns both claims,
    the execution's taken again by "w0" (as when its timeout or a cancel is due)."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    [claim] = store.claim_workflow_tasks("w0", 1)
    store.record_workflow_task(claim, history_length=1, events=[STARTED, scheduled()])
    [task] = store.claim_activity_tasks("w1", 1)
    WorkflowExecution.objects.filter(pk=execution_id).update(wake_at=timezone.now())
    [claim] = store.claim_workflow_tasks("w0", 1)
    return claim, task


def parent_and_child():
    """A parent waiting for its child; both have a workflow task claimed."""
    parent_id = start_workflow("testapp.parent_waiting_on_child")
    [parent] = store.claim_workflow_tasks("wp", 1)
    child_id = uuid.uuid4()
    start_child = Event(
        EventKind.CHILD_WORKFLOW_STARTED,
        1,
        "testapp.collect_signals",
        {"input": {"count": 1}, "execution_id": str(child_id)},
    )
    store.record_workflow_task(parent, history_length=1, events=[STARTED, start_child])
    [child] = store.claim_workflow_tasks("wc", 1, execution_ids=[child_id])
    WorkflowExecution.objects.filter(pk=parent_id).update(wake_at=timezone.now())
    [parent] = store.claim_workflow_tasks("wp", 1, execution_ids=[parent_id])
    return parent, child


class Transaction(threading.Thread):
    """A store call on its own thread, hence its own database connection."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = self.error = None
        self.pid = None
        self.ready = threading.Event()

    def run(self):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '20s'")  # a bug must fail, not hang
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self.ready.set()
            self.result = self.fn()
        except Exception as exc:
            self.error = exc
        finally:
            self.ready.set()
            connections.close_all()

    def finish(self):
        self.join(timeout=60)
        assert not self.is_alive(), "the transaction never finished"
        if self.error is not None:
            raise self.error
        return self.result


def wait_until_blocked(pid: int) -> None:
    """Wait until the backend `pid` waits for a row lock another transaction holds."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def race(execution_id, first, second):
    """`first` runs in a transaction that locks the execution beforehand (as a recording
    workflow task does with its fenced update) and waits; `second` starts and blocks on
    some lock; then `first` goes on. Returns both results."""
    locked, go = threading.Event(), threading.Event()

    def holder_body():
        with transaction.atomic(using=alias()):
            list(WorkflowExecution.objects.select_for_update().filter(pk=execution_id))
            locked.set()
            assert go.wait(30)
            return first()

    holder = Transaction(holder_body)
    holder.start()
    assert locked.wait(30)
    other = Transaction(second)
    other.start()
    other.ready.wait(30)
    wait_until_blocked(other.pid)
    go.set()
    return holder.finish(), other.finish()


# -- one lock order: no deadlock -----------------------------------------------------------


def test_an_activity_completing_while_its_workflow_completes_does_not_deadlock():
    claim, task = running_activity()
    # The workflow (say it timed out) ends and cancels its activity while the activity's
    # own completion is being recorded: execution then activity, in both transactions.
    _, recorded = race(
        claim.execution_id,
        lambda: store.record_workflow_task(claim, history_length=3, events=[STARTED, COMPLETED]),
        lambda: store.complete_activity_task(task, result=3),
    )
    assert recorded is False  # the attempt was canceled first: its result is discarded
    assert WorkflowExecution.objects.get().status == ExecutionStatus.COMPLETED
    assert ActivityTask.objects.get().status == ActivityStatus.CANCELED


def test_a_child_completing_while_its_parent_completes_does_not_deadlock():
    parent, child = parent_and_child()
    race(
        parent.execution_id,
        lambda: store.record_workflow_task(parent, history_length=3, events=[STARTED, COMPLETED]),
        lambda: store.record_workflow_task(child, history_length=1, events=[STARTED, COMPLETED]),
    )
    statuses = dict(WorkflowExecution.objects.values_list("pk", "status"))
    assert statuses == {
        parent.execution_id: ExecutionStatus.COMPLETED,
        child.execution_id: ExecutionStatus.COMPLETED,
    }


def test_canceling_a_parked_child_while_its_parent_completes_does_not_deadlock():
    parent, child = parent_and_child()
    store.park_execution(child, {"type": "T", "message": "parked"})
    race(
        parent.execution_id,
        lambda: store.record_workflow_task(parent, history_length=3, events=[STARTED, COMPLETED]),
        lambda: store.request_cancel(child.execution_id, "operator"),
    )
    statuses = dict(WorkflowExecution.objects.values_list("pk", "status"))
    assert statuses == {
        parent.execution_id: ExecutionStatus.COMPLETED,
        child.execution_id: ExecutionStatus.CANCELED,
    }


def test_multi_row_activity_updates_lock_in_primary_key_order():
    claim, _ = running_activity()
    with CaptureQueriesContext(connection) as queries:
        store.extend_activity_leases("w1", [1, 2, 3])
        store.release_activity_tasks("w1", [1, 2, 3])
        store.record_workflow_task(claim, history_length=3, events=[STARTED, COMPLETED])
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "django_durable_act')]
    assert len(updates) == 3
    assert all("ORDER BY 1 ASC FOR UPDATE" in update for update in updates)


# -- NOTIFY: the other workers hear of work they must take ---------------------------------


def execution_updates(queries) -> int:
    return sum(q["sql"].startswith('UPDATE "django_durable_workflowexecution"') for q in queries)


def test_a_record_that_leaves_the_execution_due_notifies(notifications):
    execution_id = start_workflow("testapp.collect_signals", count=2)
    [claim] = store.claim_workflow_tasks("w1", 1)
    store.send_signal(execution_id, "item", "a")  # arrives while the task runs
    notifications()
    with CaptureQueriesContext(connection) as queries:
        store.record_workflow_task(claim, history_length=1, events=[STARTED])
    assert notifications() == [f"workflow:{execution_id}"]
    assert execution_updates(queries) == 1  # the fences are read first: no second try
    assert WorkflowExecution.objects.get().wake_at <= timezone.now()


def test_a_record_that_leaves_the_execution_waiting_is_one_silent_update(notifications):
    start_workflow("testapp.collect_signals", count=2)
    [claim] = store.claim_workflow_tasks("w1", 1)
    notifications()
    with CaptureQueriesContext(connection) as queries:
        store.record_workflow_task(claim, history_length=1, events=[STARTED])
    assert notifications() == []
    assert execution_updates(queries) == 1
    assert WorkflowExecution.objects.get().wake_at is None


def test_a_stale_record_still_loses_its_lease_when_input_arrived():
    execution_id = start_workflow("testapp.collect_signals", count=2)
    [stale] = store.claim_workflow_tasks("w1", 1)
    store.send_signal(execution_id, "item", "a")
    store.claim_workflow_tasks("w2", 1, now=timezone.now() + timedelta(seconds=10))
    with pytest.raises(store.LeaseLost):
        store.record_workflow_task(stale, history_length=1, events=[STARTED])


def test_a_scheduled_retry_notifies(notifications):
    claim, task = running_activity()
    notifications()
    error = {"type": "builtins.ValueError", "message": "again", "traceback": ""}
    retry_at = timezone.now() + timedelta(seconds=5)
    assert store.complete_activity_task(task, error=error, retry_at=retry_at)
    # One "activity" wake-up: other workers re-compute when they must look again.
    assert [note.partition(":")[0] for note in notifications()] == ["activity"]
    assert store.next_due_at(execution_ids=[claim.execution_id], now=timezone.now()) is not None


def test_a_stale_completion_wakes_nobody(notifications):
    _, task = running_activity()
    store.claim_activity_tasks("w2", 1, now=timezone.now() + timedelta(seconds=10))
    version = WorkflowExecution.objects.get().inbox_version
    notifications()
    assert store.complete_activity_task(task, result=3) is False
    assert notifications() == []
    assert WorkflowExecution.objects.get().inbox_version == version


def test_releases_unparking_and_cancels_notify(notifications):
    claim, task = running_activity()
    notifications()
    assert store.release_activity_tasks("w1", [task.task_id]) == 1
    assert notifications() == ["activity:w1"]
    store.park_execution(claim, {"type": "T", "message": "parked"})
    assert store.unpark_executions() == 1
    assert notifications() == ["workflow:unparked"]
    store.request_cancel(claim.execution_id, "operator")
    assert notifications() == [f"workflow:{claim.execution_id}"]
