"""`retry_workflow`: an ended execution runs again as a new one, a parked one is resumed, and
everything else is refused with a message that says what to do instead."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections, transaction
from django.utils import timezone

from django_durable import (
    ExecutionNotRetryable,
    InvalidArgument,
    WorkflowBlocked,
    WorkflowFailed,
    WorkflowNotFound,
    cancel_workflow,
    register,
    retry_workflow,
    run_workflow,
    send_signal,
    start_workflow,
    store,
    wait_workflow,
)
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine.workflow_task import run_workflow_task
from django_durable.models import HistoryEvent, WorkflowExecution
from django_durable.registry import WorkflowDefinition

pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="row locks and NOTIFY are PostgreSQL's"
)


def deploy(monkeypatch, name: str, fn) -> None:
    """Stand in for a deploy that changed the code registered under `name`."""
    monkeypatch.setitem(register.workflows, name, WorkflowDefinition(name, fn, True))


def failed_add_twice(monkeypatch, drive, **start) -> uuid.UUID:
    """An add_twice execution failed by a bug, and the fix deployed since."""
    fixed = register.workflows["testapp.add_twice"]

    async def buggy(ctx, a, b):
        raise RuntimeError("bug in release 1")

    deploy(monkeypatch, "testapp.add_twice", buggy)
    execution_id = start_workflow("testapp.add_twice", a=1, b=2, **start)
    assert drive(execution_id).status == ExecutionStatus.FAILED
    monkeypatch.setitem(register.workflows, "testapp.add_twice", fixed)
    return execution_id


def parked_add_twice(monkeypatch) -> uuid.UUID:
    """An add_twice execution parked on non-determinism: code that renamed its activity was
    deployed while it waited; the compatible code is deployed again since."""
    compatible = register.workflows["testapp.add_twice"]
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    [claim] = store.claim_workflow_tasks("w1", 10)
    async_to_sync(run_workflow_task)(claim)

    async def renamed(ctx, a, b):
        return await ctx.run_activity("testapp.async_double", a)

    deploy(monkeypatch, "testapp.add_twice", renamed)
    [task] = store.claim_activity_tasks("w1", 10)
    store.complete_activity_task(task, result=3)
    [claim] = store.claim_workflow_tasks("w1", 10)
    assert async_to_sync(run_workflow_task)(claim).parked
    assert WorkflowExecution.objects.get(pk=execution_id).status == ExecutionStatus.BLOCKED
    monkeypatch.setitem(register.workflows, "testapp.add_twice", compatible)
    return execution_id


def started_timeout(execution_id) -> float | None:
    started = HistoryEvent.objects.get(execution_id=execution_id, sequence=1)
    assert started.kind == EventKind.WORKFLOW_STARTED
    return started.data["timeout"]


# -- an ended execution runs again as a new one ----------------------------------------------


def test_a_failed_execution_is_retried_as_a_new_one_that_completes(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive, workflow_id="order-7", execution_timeout=120)
    failed_history = list(HistoryEvent.objects.filter(execution_id=failed_id).values_list("pk"))

    retry_id = retry_workflow(failed_id)

    assert isinstance(retry_id, uuid.UUID) and retry_id != failed_id
    retry = WorkflowExecution.objects.get(pk=retry_id)
    assert (retry.workflow_name, retry.input, retry.workflow_id) == (
        "testapp.add_twice",
        {"a": 1, "b": 2},
        "order-7",
    )
    assert retry.retried_from_id == failed_id
    assert retry.status == ExecutionStatus.RUNNING
    assert retry.wake_at <= timezone.now()
    assert started_timeout(retry_id) == 120  # as started, not the workflow's default (none)
    assert abs(retry.timeout_at - retry.created_at - timedelta(seconds=120)) < timedelta(seconds=5)
    assert list(retry.history.values_list("kind", flat=True)) == [EventKind.WORKFLOW_STARTED]

    drive(retry_id)
    assert wait_workflow(retry_id) == 5
    failed = WorkflowExecution.objects.get(pk=failed_id)
    assert failed.status == ExecutionStatus.FAILED  # the ended one is left as it was
    assert list(failed.history.values_list("pk")) == failed_history
    assert list(failed.retries.all()) == [retry]


def test_a_timed_out_execution_is_retried_with_the_timeout_it_was_started_with(drive):
    timed_out_id = start_workflow("testapp.slow_with_default_timeout", execution_timeout=45)
    assert drive(timed_out_id).status == ExecutionStatus.TIMED_OUT

    retry_id = retry_workflow(timed_out_id)

    retry = WorkflowExecution.objects.get(pk=retry_id)
    assert retry.retried_from_id == timed_out_id
    assert started_timeout(retry_id) == 45  # the workflow's own default is 30
    assert drive(retry_id).status == ExecutionStatus.TIMED_OUT


def test_a_canceled_execution_is_retried_and_completes(drive):
    canceled_id = start_workflow("testapp.collect_signals", count=1)
    with pytest.raises(WorkflowBlocked):
        drive(canceled_id)
    cancel_workflow(canceled_id, reason="by mistake")
    assert drive(canceled_id).status == ExecutionStatus.CANCELED

    retry_id = retry_workflow(str(canceled_id))  # the id's text works too

    retry = WorkflowExecution.objects.get(pk=retry_id)
    assert (retry.retried_from_id, retry.input, retry.cancel_requested) == (
        canceled_id,
        {"count": 1},
        False,
    )
    send_signal(retry_id, "item", "x")
    drive(retry_id)
    assert wait_workflow(retry_id) == ["x"]


def test_a_retry_that_failed_again_is_retried_in_turn(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive)
    retry_id = retry_workflow(failed_id)

    async def still_buggy(ctx, a, b):
        raise RuntimeError("bug in release 2")

    fixed = register.workflows["testapp.add_twice"]
    deploy(monkeypatch, "testapp.add_twice", still_buggy)
    assert drive(retry_id).status == ExecutionStatus.FAILED
    deploy(monkeypatch, "testapp.add_twice", fixed.fn)

    second_id = retry_workflow(retry_id)
    assert WorkflowExecution.objects.get(pk=second_id).retried_from_id == retry_id
    drive(second_id)
    assert wait_workflow(second_id) == 5


# -- a parked execution is resumed in place --------------------------------------------------


def test_a_parked_execution_is_resumed_in_place_and_completes(monkeypatch, drive):
    parked_id = parked_add_twice(monkeypatch)
    before = timezone.now()

    assert retry_workflow(parked_id) == parked_id

    execution = WorkflowExecution.objects.get(pk=parked_id)
    assert execution.status == ExecutionStatus.RUNNING
    assert before <= execution.wake_at <= timezone.now()
    assert WorkflowExecution.objects.count() == 1  # no new execution
    [claim] = store.claim_workflow_tasks("w2", 10)  # due: any worker takes it now
    assert claim.execution_id == parked_id
    assert not async_to_sync(run_workflow_task)(claim).parked  # its code fits its history
    drive(parked_id)
    assert wait_workflow(parked_id) == 5


def test_a_parked_child_is_resumed_in_place_for_its_waiting_parent(drive):
    parent_id = start_workflow("testapp.parent_waiting_on_child")
    with pytest.raises(WorkflowBlocked):
        drive(parent_id)  # its child waits for a signal
    child = WorkflowExecution.objects.get(parent_id=parent_id)
    WorkflowExecution.objects.filter(pk=child.pk).update(wake_at=timezone.now())
    [claim] = store.claim_workflow_tasks("w1", 10, execution_ids=[child.pk])
    store.park_execution(claim, {"type": "T", "message": "parked for the test"})

    assert retry_workflow(child.pk) == child.pk  # unlike an ended child, not refused

    assert WorkflowExecution.objects.get(pk=child.pk).status == ExecutionStatus.RUNNING
    send_signal(child.pk, "item", "x")
    drive(parent_id)
    assert wait_workflow(parent_id) == ["x"]


def test_resuming_skips_an_execution_that_is_no_longer_parked(drive):
    execution_id = start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 10)
    store.park_execution(claim, {"type": "T", "message": "parked for the test"})
    cancel_workflow(execution_id, reason="an operator gave up")

    assert store.resume_execution(execution_id) is False

    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert (execution.status, execution.wake_at) == (ExecutionStatus.CANCELED, None)


# -- refusals: nothing is written ------------------------------------------------------------


def refused(execution_id, error, message):
    executions = WorkflowExecution.objects.count()
    with pytest.raises(error, match=message):
        retry_workflow(execution_id)
    assert WorkflowExecution.objects.count() == executions


def test_a_running_execution_is_refused():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    refused(
        execution_id,
        ExecutionNotRetryable,
        rf"^Execution {execution_id} is running: wait for it to end, or cancel it and retry it "
        r"then\.$",
    )


def test_a_completed_execution_is_refused():
    assert run_workflow("testapp.add_twice", a=1, b=2) == 5
    execution_id = WorkflowExecution.objects.get().pk
    refused(
        execution_id,
        ExecutionNotRetryable,
        rf"^Execution {execution_id} completed: start its workflow again instead of retrying "
        r"it\.$",
    )


def test_a_child_is_refused_its_parent_named():
    assert run_workflow("testapp.parent_of_failure") == "builtins.KeyError: 'no such thing'"
    child = WorkflowExecution.objects.get(workflow_name="testapp.raises_directly")
    assert child.status == ExecutionStatus.FAILED
    refused(
        child.pk,
        ExecutionNotRetryable,
        rf"^Execution {child.pk} is a child of execution {child.parent_id}: retry its parent, "
        r"which starts its children again\.$",
    )


def test_an_execution_is_retried_at_most_once(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive)
    retry_id = retry_workflow(failed_id)
    refused(
        failed_id,
        ExecutionNotRetryable,
        rf"^Execution {failed_id} was already retried as execution {retry_id}: retry that one "
        r"instead, if it ended without completing\.$",
    )


def test_a_live_execution_holding_the_workflow_id_is_not_doubled(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive, workflow_id="order-7")
    live_id = start_workflow(
        "testapp.collect_signals", workflow_id="order-7", id_reuse_policy="allow_duplicate", count=1
    )
    refused(
        failed_id,
        ExecutionNotRetryable,
        rf"^Execution {live_id} holds workflow_id 'order-7' and has not ended: wait for it, or "
        rf"cancel it, before retrying execution {failed_id}\.$",
    )
    assert not WorkflowExecution.objects.filter(retried_from=failed_id).exists()


def test_unknown_ids_are_not_found():
    unknown = uuid.uuid4()
    refused(unknown, WorkflowNotFound, f"^No workflow execution has the id '{unknown}'.$")
    refused("not-a-uuid", WorkflowNotFound, "^No workflow execution has the id 'not-a-uuid'.$")


@pytest.mark.parametrize("bad", [42, None, b"\x00" * 16])
def test_an_id_of_the_wrong_type_is_an_invalid_argument(bad):
    refused(bad, InvalidArgument, "^execution_id must be a UUID or its text, not ")


def test_a_workflow_this_process_does_not_register_is_refused(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive)
    monkeypatch.delitem(register.workflows, "testapp.add_twice")
    refused(
        failed_id,
        WorkflowNotFound,
        rf"^Execution {failed_id} runs workflow 'testapp.add_twice', which this process does "
        r"not register: retry it where the workflow's code is deployed\.$",
    )


def test_a_parked_execution_of_an_unregistered_workflow_is_not_resumed(monkeypatch):
    parked_id = parked_add_twice(monkeypatch)
    monkeypatch.delitem(register.workflows, "testapp.add_twice")
    refused(parked_id, WorkflowNotFound, "which this process does not register")
    assert WorkflowExecution.objects.get(pk=parked_id).status == ExecutionStatus.BLOCKED


def test_stored_input_that_no_longer_fits_the_code_is_refused(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive)

    async def takes_c_too(ctx, a, b, c):
        return a + b + c

    deploy(monkeypatch, "testapp.add_twice", takes_c_too)
    refused(
        failed_id,
        InvalidArgument,
        rf"^Bad stored input of execution {failed_id} for workflow 'testapp.add_twice': "
        r"missing a required argument: 'c'\.$",
    )


# -- from async code -------------------------------------------------------------------------


async def test_retry_awaited_from_async_code():
    with pytest.raises(WorkflowFailed):
        await run_workflow("testapp.raises_directly")
    failed = await WorkflowExecution.objects.aget()

    retry_id = await retry_workflow(failed.pk)

    retry = await WorkflowExecution.objects.aget(pk=retry_id)
    assert (retry.retried_from_id, retry.status) == (failed.pk, ExecutionStatus.RUNNING)


async def test_resume_awaited_from_async_code():
    execution_id = await start_workflow("testapp.collect_signals", count=1)
    [claim] = await store.aclaim_workflow_tasks("w1", 10)
    await store.apark_execution(claim, {"type": "T", "message": "parked for the test"})

    assert await retry_workflow(execution_id) == execution_id

    execution = await WorkflowExecution.objects.aget(pk=execution_id)
    assert execution.status == ExecutionStatus.RUNNING
    assert execution.wake_at <= timezone.now()


# -- PostgreSQL: the wake-up, and retries racing ---------------------------------------------


@postgres_only
def test_a_retry_and_a_resume_wake_the_workers(monkeypatch, drive, notifications):
    failed_id = failed_add_twice(monkeypatch, drive)
    notifications()
    retry_id = retry_workflow(failed_id)
    assert notifications() == [f"workflow:{retry_id}"]

    parked_id = start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 10, execution_ids=[parked_id])
    store.park_execution(claim, {"type": "T", "message": "parked for the test"})
    notifications()
    retry_workflow(parked_id)
    assert notifications() == [f"workflow:{parked_id}"]


class OnItsOwnConnection(threading.Thread):
    """`fn` on its own thread, hence its own database connection."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.fn()
        except Exception as exc:
            self.error = exc
        finally:
            connections.close_all()

    def finish(self):
        self.join(timeout=60)
        assert not self.is_alive(), "the call never finished"
        return self.result, self.error


def holding_a_lock(execution_id, seconds: float) -> tuple[OnItsOwnConnection, threading.Event]:
    """A transaction on another connection that locks the execution's row for `seconds`
    (or until the returned event is set)."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            list(WorkflowExecution.objects.select_for_update().filter(pk=execution_id))
            locked.set()
            release.wait(seconds)

    holder = OnItsOwnConnection(hold)
    holder.start()
    assert locked.wait(30)
    return holder, release


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0]


@postgres_only
def test_a_parked_execution_locked_by_another_change_is_skipped_not_waited_for():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    [claim] = store.claim_workflow_tasks("w1", 10)
    store.park_execution(claim, {"type": "T", "message": "parked for the test"})
    holder, release = holding_a_lock(execution_id, seconds=10)
    started = time.monotonic()
    try:
        with pytest.raises(
            ExecutionNotRetryable,
            match=rf"^Execution {execution_id} changed while it was being resumed \(it is locked "
            r"by another change\): look at it again\.$",
        ):
            retry_workflow(execution_id)
        assert time.monotonic() - started < 5  # it did not wait for the lock
    finally:
        release.set()
        holder.finish()
    assert WorkflowExecution.objects.get().status == ExecutionStatus.BLOCKED


@postgres_only
def test_two_retries_at_once_make_one_new_execution(monkeypatch, drive):
    failed_id = failed_add_twice(monkeypatch, drive)
    holder, release = holding_a_lock(failed_id, seconds=30)
    retries = [OnItsOwnConnection(lambda: retry_workflow(failed_id)) for _ in range(2)]
    for each in retries:
        each.start()
    deadline = time.monotonic() + 20
    while lock_waiters() < 2 and time.monotonic() < deadline:  # both wait for the ended row
        time.sleep(0.02)
    release.set()
    holder.finish()
    outcomes = [each.finish() for each in retries]

    [retry_id] = WorkflowExecution.objects.filter(retried_from=failed_id).values_list(
        "pk", flat=True
    )
    assert sorted(outcomes, key=lambda outcome: outcome[0] is None) == [
        (retry_id, None),
        (None, outcomes[0][1] or outcomes[1][1]),
    ]
    [(_, error)] = [outcome for outcome in outcomes if outcome[0] is None]
    assert isinstance(error, ExecutionNotRetryable)
    assert f"was already retried as execution {retry_id}" in str(error)
