"""Store guarantees: leases with fencing, at-most-once completion, recorded is final."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from django_durable import NonDeterminismError, register, run_workflow, start_workflow, store
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.engine.workflow_task import run_workflow_task
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from django_durable.registry import WorkflowDefinition
from django_durable.runtime import WorkflowInfo, replay
from tests.testapp.durable_activities import CALLS

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = timedelta(seconds=3)  # tests.settings sets DURABLE["LEASE_SECONDS"] = 3


async def first_task(execution_id, owner="w1", now=None):
    [claim] = await store.aclaim_workflow_tasks(owner, 10, now=now)
    await run_workflow_task(claim, now=now)
    return claim


def test_a_leased_workflow_task_is_not_claimed_twice_until_the_lease_expires():
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    now = timezone.now()
    [first] = store.claim_workflow_tasks("w1", 10, now=now)
    assert store.claim_workflow_tasks("w2", 10, now=now + LEASE / 2) == []
    [second] = store.claim_workflow_tasks("w2", 10, now=now + LEASE * 2)
    assert second.execution_id == first.execution_id == execution_id
    assert second.epoch == first.epoch + 1


def test_a_worker_that_lost_its_lease_cannot_record():
    start_workflow("testapp.add_twice", a=1, b=2)
    now = timezone.now()
    [stale] = store.claim_workflow_tasks("w1", 10, now=now)
    store.claim_workflow_tasks("w2", 10, now=now + LEASE * 2)
    with pytest.raises(store.LeaseLost):
        store.record_workflow_task(stale, history_length=1, events=[], now=now)
    assert HistoryEvent.objects.count() == 1


async def test_stale_workflow_task_records_nothing():
    execution_id = await start_workflow("testapp.add_twice", a=1, b=2)
    now = timezone.now()
    [stale] = await store.aclaim_workflow_tasks("w1", 10, now=now)
    await store.aclaim_workflow_tasks("w2", 10, now=now + LEASE * 2)
    result = await run_workflow_task(stale, now=now)
    assert result.lease_lost
    assert await HistoryEvent.objects.filter(execution_id=execution_id).acount() == 1
    assert not await ActivityTask.objects.aexists()


async def test_late_activity_result_from_a_lost_lease_is_discarded():
    await first_task(await start_workflow("testapp.add_twice", a=1, b=2))
    now = timezone.now()
    [old] = await store.aclaim_activity_tasks("w1", 10, now=now)
    [new] = await store.aclaim_activity_tasks("w2", 10, now=now + LEASE * 2)
    assert (old.task_id, old.attempt, new.attempt) == (new.task_id, 1, 2)
    assert new.idempotency_key.endswith(":1:2")
    assert await store.acomplete_activity_task(old, result=999) is False
    assert await store.acomplete_activity_task(new, result=3) is True
    assert await store.acomplete_activity_task(new, result=4) is False  # at most once
    task = await ActivityTask.objects.aget()
    assert (task.status, task.result, task.attempt) == (ActivityStatus.COMPLETED, 3, 2)


async def test_input_arriving_during_a_workflow_task_makes_it_due_again():
    execution_id = await start_workflow("testapp.collect_signals", count=2)
    [claim] = await store.aclaim_workflow_tasks("w1", 10)
    await store.asend_signal(execution_id, "item", "a")  # arrives mid-task
    await run_workflow_task(claim)
    execution = await WorkflowExecution.objects.aget(pk=execution_id)
    assert execution.wake_at is not None and execution.wake_at <= timezone.now()
    [again] = await store.aclaim_workflow_tasks("w1", 10)
    await run_workflow_task(again)
    assert await HistoryEvent.objects.filter(kind=EventKind.SIGNAL_RECEIVED).acount() == 1


def test_recorded_outcomes_are_replayed_not_recomputed():
    run_workflow("testapp.add_twice", a=1, b=2)
    assert CALLS["add"] == 2
    execution = WorkflowExecution.objects.get()
    history = store.load_history(execution.pk)
    info = WorkflowInfo(execution_id=execution.pk, workflow_name=execution.workflow_name)
    for _ in range(3):
        instance = replay(
            register.get_workflow("testapp.add_twice"), info, {"a": 1, "b": 2}, history
        )
        assert instance.completion.data["result"] == 5
    assert CALLS["add"] == 2


def run_into_incompatible_code(monkeypatch):
    """Start add_twice, record its first task, deploy code that renamed its activity, and
    run the next task; returns (execution id, history before, task result)."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    async_to_sync(first_task)(execution_id)
    before = list(HistoryEvent.objects.values_list("sequence", "kind"))

    async def changed(ctx, a, b):
        return await ctx.run_activity("testapp.async_double", a)

    monkeypatch.setitem(
        register.workflows,
        "testapp.add_twice",
        WorkflowDefinition("testapp.add_twice", changed, True),
    )
    [task] = store.claim_activity_tasks("w1", 10)
    store.complete_activity_task(task, result=3)
    [claim] = store.claim_workflow_tasks("w1", 10)
    return execution_id, before, async_to_sync(run_workflow_task)(claim)


def test_non_determinism_parks_the_execution_untouched(monkeypatch):
    _, before, result = run_into_incompatible_code(monkeypatch)
    assert "history expects activity scheduled 'testapp.add'" in result.parked
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.BLOCKED
    assert "testapp.async_double" in execution.error["message"]
    assert execution.lease_owner == ""
    assert list(HistoryEvent.objects.values_list("sequence", "kind")) == before
    assert store.claim_workflow_tasks("w2", 10) == []


@override_settings(DURABLE={"STICKY_CACHE_SIZE": 0})
def test_run_workflow_reports_non_determinism(monkeypatch):
    calls = {"n": 0}

    async def flaky_code(ctx, a, b):
        calls["n"] += 1  # the code changes between the first run and its replay
        if calls["n"] == 1:
            return await ctx.run_activity("testapp.add", a, b)
        return await ctx.run_activity("testapp.async_double", a)

    monkeypatch.setitem(
        register.workflows,
        "testapp.add_twice",
        WorkflowDefinition("testapp.add_twice", flaky_code, True),
    )
    with pytest.raises(NonDeterminismError, match="not deterministic"):
        run_workflow("testapp.add_twice", a=1, b=1)


def test_a_parked_execution_can_be_canceled_at_once(monkeypatch):
    from django_durable import WorkflowCanceled, cancel_workflow, wait_workflow

    execution_id, _, _ = run_into_incompatible_code(monkeypatch)
    assert WorkflowExecution.objects.get().status == ExecutionStatus.BLOCKED
    cancel_workflow(execution_id, reason="operator gave up")
    with pytest.raises(WorkflowCanceled):
        wait_workflow(execution_id)
    last = HistoryEvent.objects.filter(execution_id=execution_id).order_by("sequence").last()
    assert (last.kind, last.data["while_parked"]) == (EventKind.WORKFLOW_CANCELED, True)
    assert list(HistoryEvent.objects.values_list("sequence", flat=True)) == list(
        range(1, last.sequence + 1)
    )
