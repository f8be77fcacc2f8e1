"""The public API, each call in its sync form and awaited from async code."""

import uuid

import pytest

from django_durable import (
    ExecutionFinished,
    PayloadError,
    WaitTimeout,
    WorkflowBlocked,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
    cancel_workflow,
    run_workflow,
    send_signal,
    start_workflow,
    wait_workflow,
)
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from tests.testapp.durable_activities import CALLS
from tests.testapp.durable_workflows import add_twice

pytestmark = pytest.mark.django_db(transaction=True)


# -- the tutorial ------------------------------------------------------------------------


def test_tutorial_onboard_user_runs_to_completion():
    assert run_workflow("yourapp.onboard_user", user_id=7) == {"ok": True, "score": 42}
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.COMPLETED
    kinds = list(execution.history.values_list("kind", flat=True))
    assert kinds == [
        EventKind.WORKFLOW_STARTED,
        EventKind.WORKFLOW_TASK_STARTED,
        EventKind.ACTIVITY_SCHEDULED,
        EventKind.WORKFLOW_TASK_STARTED,
        EventKind.ACTIVITY_COMPLETED,
        EventKind.TIMER_STARTED,
        EventKind.WORKFLOW_TASK_STARTED,
        EventKind.TIMER_FIRED,
        EventKind.ACTIVITY_SCHEDULED,
        EventKind.WORKFLOW_TASK_STARTED,
        EventKind.ACTIVITY_COMPLETED,
        EventKind.WORKFLOW_COMPLETED,
    ]
    assert list(execution.history.values_list("sequence", flat=True)) == list(range(1, 13))
    timer = execution.history.get(kind=EventKind.TIMER_STARTED)
    assert timer.data["duration"] == 3600
    assert execution.activity_tasks.filter(status="completed", attempt=1).count() == 2


async def test_tutorial_onboard_user_awaited():
    assert await run_workflow("yourapp.onboard_user", user_id=8) == {"ok": True, "score": 42}


def test_tutorial_signal_example(drive):
    with pytest.raises(WorkflowBlocked, match="waits for signal 'go'"):
        run_workflow("yourapp.example_with_signal")
    execution_id = start_workflow("yourapp.example_with_signal")
    send_signal(execution_id, "go", {"clicked": True})
    drive(execution_id)
    assert wait_workflow(execution_id) == {"sig": {"clicked": True}}


async def test_tutorial_signal_example_awaited(adrive):
    execution_id = await start_workflow("yourapp.example_with_signal")
    with pytest.raises(WorkflowBlocked):  # nobody sent "go" yet
        await adrive(execution_id)
    await send_signal(execution_id, "go", {"clicked": True})
    await adrive(execution_id)
    assert await wait_workflow(execution_id) == {"sig": {"clicked": True}}


# -- start ---------------------------------------------------------------------------------


def test_start_commits_before_returning():
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    assert isinstance(execution_id, uuid.UUID)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.status == ExecutionStatus.RUNNING
    assert execution.input == {"a": 1, "b": 2}
    assert execution.history.get().kind == EventKind.WORKFLOW_STARTED


async def test_start_awaited_from_async_code():
    execution_id = await start_workflow(add_twice, a=1, b=2)
    execution = await WorkflowExecution.objects.aget(pk=execution_id)
    assert execution.workflow_name == "testapp.add_twice"


async def test_start_from_an_async_view(async_client):
    response = await async_client.get("/start/?user=5")
    assert response.status_code == 200
    execution = await WorkflowExecution.objects.aget(pk=response.json()["execution_id"])
    assert execution.input == {"user_id": 5}


@pytest.mark.parametrize(
    ("name", "inputs", "error", "message"),
    [
        ("testapp.add_twice", {"a": object(), "b": 1}, PayloadError, "must be JSON-serializable"),
        (
            "testapp.add_twise",
            {"a": 1, "b": 2},
            WorkflowNotFound,
            "Did you mean 'testapp.add_twice'",
        ),
        ("testapp.add_twice", {"a": 1}, TypeError, "Bad input for workflow 'testapp.add_twice'"),
        ("testapp.add_twice", {"a": 1, "b": 2, "c": 3}, TypeError, "unexpected keyword"),
    ],
)
def test_bad_start_is_refused_and_writes_nothing(name, inputs, error, message):
    with pytest.raises(error, match=message):
        start_workflow(name, **inputs)
    assert not WorkflowExecution.objects.exists()
    assert not HistoryEvent.objects.exists()


def test_workflow_id_makes_start_idempotent():
    first = start_workflow("testapp.add_twice", workflow_id="order-42", a=1, b=2)
    second = start_workflow("testapp.add_twice", workflow_id="order-42", a=1, b=2)
    assert first == second
    assert WorkflowExecution.objects.count() == 1


# -- results and failures --------------------------------------------------------------------


def test_async_workflow_with_activities_and_function_references():
    assert run_workflow(add_twice, a=1, b=2) == 5
    assert CALLS["add"] == 2


def test_gathered_activities_keep_call_order():
    assert run_workflow("testapp.fan_out", n=6) == [0, 2, 4, 6, 8, 10]
    assert ActivityTask.objects.count() == 6


def test_durable_timers_are_fast_forwarded_and_recorded():
    result = run_workflow("testapp.sleepy", seconds=600)
    assert result["slept"] >= 1200
    assert HistoryEvent.objects.filter(kind=EventKind.TIMER_FIRED).count() == 2


def test_failed_activity_can_be_caught():
    assert run_workflow("testapp.catches_failure") == "caught builtins.ValueError: boom"


def test_failing_workflow_raises_workflow_failed_with_remote_traceback():
    with pytest.raises(WorkflowFailed) as caught:
        run_workflow("testapp.fails", message="card declined")
    assert caught.value.error_type == "django_durable.exceptions.ActivityError"
    assert "card declined" in caught.value.message
    assert 'ctx.run_activity("testapp.explode", message)' in caught.value.remote_traceback
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error["traceback"] == caught.value.remote_traceback
    with pytest.raises(WorkflowFailed):
        wait_workflow(execution.pk)


def test_workflow_raising_directly_is_failed():
    with pytest.raises(WorkflowFailed, match="KeyError"):
        run_workflow("testapp.raises_directly")


def test_non_serializable_workflow_result_fails_clearly():
    with pytest.raises(WorkflowFailed, match="result must be JSON-serializable"):
        run_workflow("testapp.returns_non_json")


def test_non_serializable_activity_result_fails_that_attempt_clearly():
    with pytest.raises(WorkflowFailed, match=r"result of activity 'testapp\.not_json'"):
        run_workflow("testapp.bad_activity_result")
    task = ActivityTask.objects.get()
    assert task.status == "failed"
    assert "JSON-serializable" in task.error["message"]


def test_activity_sees_its_idempotency_key():
    result = run_workflow("testapp.identity")
    execution = WorkflowExecution.objects.get()
    assert result == {"key": f"{execution.pk}:1:1", "attempt": 1, "seq": 1}


def test_deterministic_values_are_recorded_not_recomputed():
    result = run_workflow("testapp.deterministic_values")
    assert len(result["uuid"]) == 36 and 0 <= result["random"] < 1


# -- wait ----------------------------------------------------------------------------------


def test_wait_times_out_while_execution_goes_on():
    execution_id = start_workflow("testapp.add_twice", a=1, b=1)
    with pytest.raises(WaitTimeout):
        wait_workflow(execution_id, timeout=0.1)
    assert WorkflowExecution.objects.get().status == ExecutionStatus.RUNNING


async def test_wait_awaited(adrive):
    execution_id = await start_workflow("testapp.add_twice", a=2, b=3)
    await adrive(execution_id)
    assert await wait_workflow(execution_id) == 8


@pytest.mark.parametrize("bad_id", [uuid.uuid4(), "not-a-uuid"])
def test_unknown_execution_is_workflow_not_found(bad_id):
    with pytest.raises(WorkflowNotFound, match="No workflow execution has the id"):
        wait_workflow(bad_id)
    with pytest.raises(WorkflowNotFound):
        send_signal(bad_id, "go")
    with pytest.raises(WorkflowNotFound):
        cancel_workflow(bad_id)


# -- signals -------------------------------------------------------------------------------


def test_signals_of_one_name_are_delivered_in_order(drive):
    execution_id = start_workflow("testapp.collect_signals", count=3)
    for item in ("a", "b", "c"):
        send_signal(execution_id, "item", item)
    drive(execution_id)
    assert wait_workflow(execution_id) == ["a", "b", "c"]
    assert not PendingSignal.objects.exists()


def test_signal_wait_times_out():
    assert run_workflow("testapp.signal_or_timeout", timeout=60) == {"got": None}


def test_signal_to_finished_execution_is_refused(drive):
    execution_id = start_workflow("testapp.add_twice", a=1, b=1)
    drive(execution_id)
    with pytest.raises(ExecutionFinished, match="already completed"):
        send_signal(execution_id, "late")
    assert not PendingSignal.objects.exists()


def test_non_json_signal_payload_is_refused_and_writes_nothing():
    execution_id = start_workflow("testapp.collect_signals", count=1)
    with pytest.raises(PayloadError):
        send_signal(execution_id, "item", object())
    assert not PendingSignal.objects.exists()


# -- cancel --------------------------------------------------------------------------------


def test_cancel_lets_the_workflow_clean_up(drive):
    execution_id = start_workflow("testapp.cancellable")
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    cancel_workflow(execution_id, reason="user asked")
    drive(execution_id)
    with pytest.raises(WorkflowCanceled):
        wait_workflow(execution_id)
    assert CALLS["add"] == 1  # the clean-up activity ran
    assert HistoryEvent.objects.filter(
        kind=EventKind.CANCEL_REQUESTED, data__reason="user asked"
    ).exists()
    with pytest.raises(ExecutionFinished):
        cancel_workflow(execution_id)


async def test_cancel_awaited(adrive):
    execution_id = await start_workflow("testapp.cancellable")
    await cancel_workflow(execution_id)
    await adrive(execution_id)
    with pytest.raises(WorkflowCanceled):
        await wait_workflow(execution_id)
