"""Starting many executions at once (`start_workflows`), and the one-statement single start."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_durable import (
    InvalidArgument,
    PayloadError,
    WorkflowNotFound,
    start_workflow,
    start_workflows,
    store,
    wait_workflow,
)
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine.workflow_task import run_workflow_task
from django_durable.models import HistoryEvent, WorkflowExecution
from django_durable.store import starts
from tests.testapp.durable_workflows import add_twice

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRESQL = connection.vendor == "postgresql"


def assert_nothing_written():
    assert not WorkflowExecution.objects.exists()
    assert not HistoryEvent.objects.exists()


def stored(execution_id) -> tuple[dict, list[dict]]:
    """An execution's columns (but its id and stamps) and its history's, for comparing."""
    row = WorkflowExecution.objects.values().get(pk=execution_id)
    for key in ("id", "created_at", "updated_at"):
        del row[key]
    events = list(
        HistoryEvent.objects.filter(execution_id=execution_id).values(
            "sequence", "kind", "command_seq", "name", "data"
        )
    )
    return row, events


# -- what a bulk start writes --------------------------------------------------------------


def test_bulk_start_returns_ids_in_input_order_each_running_with_one_started_event():
    inputs = [{"a": n, "b": 100 + n} for n in range(25)]
    ids = start_workflows("testapp.add_twice", inputs)
    assert len(ids) == len(set(ids)) == 25
    assert all(isinstance(execution_id, uuid.UUID) for execution_id in ids)
    for execution_id, expected in zip(ids, inputs, strict=True):
        execution = WorkflowExecution.objects.get(pk=execution_id)
        assert execution.status == ExecutionStatus.RUNNING
        assert execution.workflow_name == "testapp.add_twice"
        assert execution.input == expected
        assert execution.workflow_id is None and execution.timeout_at is None
        assert execution.wake_at is not None and execution.wake_at <= timezone.now()
        [event] = execution.history.all()
        assert (event.sequence, event.kind) == (1, EventKind.WORKFLOW_STARTED)
        assert event.data == {"input": expected, "timeout": None}
    assert HistoryEvent.objects.count() == 25


def test_bulk_start_takes_the_function_and_any_iterable():
    ids = start_workflows(add_twice, ({"a": n, "b": 1} for n in range(3)))
    inputs = [WorkflowExecution.objects.get(pk=execution_id).input for execution_id in ids]
    assert inputs == [{"a": 0, "b": 1}, {"a": 1, "b": 1}, {"a": 2, "b": 1}]


def test_bulk_start_stores_inputs_as_they_read_back():
    [execution_id] = start_workflows("testapp.add_twice", [{"a": (1, 2), "b": 1e16}])
    assert WorkflowExecution.objects.get(pk=execution_id).input == {"a": [1, 2], "b": 10**16}


def test_bulk_start_applies_the_execution_timeout_or_the_workflows_default():
    [given] = start_workflows("testapp.add_twice", [{"a": 1, "b": 1}], execution_timeout=90)
    [default] = start_workflows("testapp.slow_with_default_timeout", [{}])
    for execution_id, seconds in ((given, 90), (default, 30)):
        execution = WorkflowExecution.objects.get(pk=execution_id)
        assert execution.timeout_at - execution.wake_at == timedelta(seconds=seconds)
        assert execution.history.get().data["timeout"] == seconds


@pytest.mark.parametrize("how", ["single", "bulk"])
def test_a_start_writes_what_the_orm_writes(how):
    """The start statements (one per start on PostgreSQL) write the rows `create_execution`,
    the ORM path children take, writes."""
    now = timezone.now()
    inputs = {"a": 1, "b": {"nested": ["x", None, 2.5]}}
    with transaction.atomic():
        orm = starts.create_execution("testapp.add_twice", inputs, now, timeout=7).pk
    if how == "single":
        new, created = store.start_execution("testapp.add_twice", inputs, timeout=7, now=now)
        assert created
    else:
        [new] = store.start_executions("testapp.add_twice", [inputs], timeout=7, now=now)
    assert stored(new) == stored(orm)


def test_a_single_start_with_a_workflow_id_writes_what_the_orm_writes():
    now = timezone.now()
    with transaction.atomic():
        orm = starts.create_execution(
            "testapp.add_twice", {"a": 1, "b": 2}, now, workflow_id="o"
        ).pk
    WorkflowExecution.objects.filter(pk=orm).update(status=ExecutionStatus.COMPLETED)
    new, created = store.start_execution(
        "testapp.add_twice",
        {"a": 1, "b": 2},
        workflow_id="o",
        id_reuse_policy=store.IdReusePolicy.ALLOW_DUPLICATE,
        now=now,
    )
    assert created and new != orm
    WorkflowExecution.objects.filter(pk=new).update(status=ExecutionStatus.COMPLETED)
    assert stored(new) == stored(orm)


def test_chunks_are_written_in_one_transaction_in_input_order(monkeypatch):
    monkeypatch.setattr(starts, "BULK_CHUNK", 3)
    inputs = [{"a": n, "b": 0} for n in range(10)]
    ids = store.start_executions("testapp.add_twice", inputs)
    assert [WorkflowExecution.objects.get(pk=i).input for i in ids] == inputs
    assert HistoryEvent.objects.filter(execution_id__in=ids, sequence=1).count() == 10


def test_chunks_are_cut_by_size_too(monkeypatch):
    monkeypatch.setattr(starts, "BULK_CHUNK_CHARS", 200)
    inputs = [{"a": "x" * 80, "b": n} for n in range(6)]
    ids = store.start_executions("testapp.add_twice", inputs)
    assert [WorkflowExecution.objects.get(pk=i).input for i in ids] == inputs


def test_a_failure_after_the_first_chunk_rolls_back_the_whole_batch(monkeypatch):
    monkeypatch.setattr(starts, "BULK_CHUNK", 2)
    if ON_POSTGRESQL:  # the third statement fails, after two chunks were written
        statement, calls = starts._bulk_statement, []

        def third_fails(*args, **kwargs):
            calls.append(args)
            if len(calls) == 3:
                raise RuntimeError("the third chunk fails")
            return statement(*args, **kwargs)

        monkeypatch.setattr(starts, "_bulk_statement", third_fails)
    else:  # the ORM path: what follows both bulk inserts fails

        def notify_fails(*args):
            raise RuntimeError("after the inserts")

        monkeypatch.setattr(starts, "notify", notify_fails)
    with pytest.raises(RuntimeError):
        store.start_executions("testapp.add_twice", [{"a": n, "b": 0} for n in range(6)])
    assert_nothing_written()


# -- refusals: the whole batch, before anything is written ---------------------------------


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ({"a": object(), "b": 1}, PayloadError, "Input 1 of workflow 'testapp.add_twice' must"),
        ({"a": "\x00", "b": 1}, PayloadError, "Input 1 of workflow .* contains a NUL"),
        ({"a": 1}, InvalidArgument, "Bad input 1 for workflow 'testapp.add_twice': missing"),
        ({"a": 1, "b": 2, "c": 3}, InvalidArgument, "Bad input 1 for .* unexpected keyword"),
        ({1: 1}, InvalidArgument, "Bad input 1 for workflow .* keywords must be strings"),
        ([1, 2], InvalidArgument, r"inputs\[1\] must be a dict of keyword arguments, not list"),
    ],
)
def test_a_bad_input_in_the_middle_refuses_the_whole_batch(bad, error, message):
    with pytest.raises(error, match=message):
        start_workflows("testapp.add_twice", [{"a": 0, "b": 0}, bad, {"a": 2, "b": 2}])
    assert_nothing_written()


def test_the_store_names_the_bad_inputs_index():
    with pytest.raises(TypeError, match=r"Input 2 of workflow 'w' must be a dict .* not list"):
        store.start_executions("w", [{}, {"a": 1}, [1]])
    with pytest.raises(PayloadError, match="Input 1 of workflow 'w' contains a lone surrogate"):
        store.start_executions("w", [{}, {"a": "\ud800"}])
    assert_nothing_written()


@pytest.mark.parametrize(
    ("workflow", "inputs", "kwargs", "error", "message"),
    [
        ("testapp.add_twise", [{}], {}, WorkflowNotFound, "Did you mean 'testapp.add_twice'"),
        (42, [{}], {}, InvalidArgument, "workflow must be a registered workflow's name"),
        ("testapp.add_twice", 5, {}, InvalidArgument, "inputs must be an iterable of dicts"),
        ("testapp.add_twice", {"a": 1, "b": 1}, {}, InvalidArgument, "not dict"),
        ("testapp.add_twice", "ab", {}, InvalidArgument, "not str"),
        (
            "testapp.add_twice",
            [{"a": 1, "b": 1}],
            {"execution_timeout": float("nan")},
            InvalidArgument,
            "execution_timeout must be a finite number of seconds",
        ),
        (
            "testapp.add_twice",
            [{"a": 1, "b": 1}],
            {"execution_timeout": 0},
            InvalidArgument,
            "execution_timeout must be more than 0 seconds",
        ),
    ],
)
def test_bad_arguments_are_refused(workflow, inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        start_workflows(workflow, inputs, **kwargs)
    assert_nothing_written()


def test_an_empty_batch_returns_an_empty_list_and_writes_nothing():
    assert start_workflows("testapp.add_twice", []) == []
    assert store.start_executions("testapp.add_twice", iter(())) == []
    assert_nothing_written()


# -- transactions and wake-ups ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["single", "bulk"])
def test_a_start_inside_the_callers_transaction_rolls_back_with_it(how):
    with pytest.raises(LookupError), transaction.atomic():
        if how == "single":
            start_workflow("testapp.add_twice", a=1, b=1)
        else:
            start_workflows("testapp.add_twice", [{"a": 1, "b": 1}] * 3)
        assert WorkflowExecution.objects.count() in (1, 3)  # visible inside it
        raise LookupError
    assert_nothing_written()


def test_a_bulk_start_sends_one_notify_for_the_batch(notifications, monkeypatch):
    monkeypatch.setattr(starts, "BULK_CHUNK", 3)
    ids = start_workflows("testapp.add_twice", [{"a": n, "b": 0} for n in range(10)])
    assert notifications() == [f"workflow:{ids[0]}"]


def test_a_single_start_sends_its_notify(notifications):
    execution_id = start_workflow("testapp.add_twice", a=1, b=1)
    assert notifications() == [f"workflow:{execution_id}"]


def test_a_start_rolled_back_sends_no_notify(notifications):
    with pytest.raises(LookupError), transaction.atomic():
        start_workflows("testapp.add_twice", [{"a": 1, "b": 1}])
        raise LookupError
    assert notifications() == []


# -- bulk-started executions run like any other ----------------------------------------------


async def test_bulk_started_workflows_are_claimed_and_run_to_completion(adrive):
    """A worker's claim takes every bulk-started execution; they run to their results."""
    ids = await start_workflows("testapp.add_twice", [{"a": n, "b": 10} for n in range(5)])
    claims = await store.aclaim_workflow_tasks("w1", 100)
    assert sorted(claim.execution_id for claim in claims) == sorted(ids)
    for claim in claims:
        assert not (await run_workflow_task(claim)).lease_lost
    for execution_id in ids:
        await adrive(execution_id)
    results = [await wait_workflow(execution_id, timeout=0) for execution_id in ids]
    assert results == [n + 20 for n in range(5)]


async def test_bulk_start_awaited_from_async_code(adrive):
    ids = await start_workflows("testapp.add_twice", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    for execution_id in ids:
        await adrive(execution_id)
    assert [await wait_workflow(execution_id, timeout=0) for execution_id in ids] == [5, 11]


async def test_the_store_twin_starts_a_batch():
    ids = await store.astart_executions("testapp.add_twice", [{"a": 1, "b": 1}] * 2)
    assert await WorkflowExecution.objects.filter(pk__in=ids).acount() == 2
