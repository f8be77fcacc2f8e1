"""Child workflows, workflow timeouts, cancellation propagation and idempotent starts."""

import pytest

from django_durable import (
    WorkflowBlocked,
    WorkflowCanceled,
    WorkflowTimedOut,
    cancel_workflow,
    run_workflow,
    start_workflow,
    wait_workflow,
)
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import HistoryEvent, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)


def test_parent_sees_its_childs_result():
    result = run_workflow("testapp.parent", x=2)
    assert result["result"] == 4  # add_twice(2, 1) = (2 + 1) + 1
    child = WorkflowExecution.objects.get(pk=result["child"])
    parent = WorkflowExecution.objects.get(workflow_name="testapp.parent")
    assert (child.parent_id, child.parent_command_seq) == (parent.pk, 1)
    assert child.status == ExecutionStatus.COMPLETED and child.delivered_to_parent
    ended = parent.history.get(kind=EventKind.CHILD_WORKFLOW_ENDED)
    assert ended.data["result"] == 4


def test_plain_parent_runs_a_child():
    assert run_workflow("testapp.plain_parent", x=3) == 9


def test_parent_sees_its_childs_failure():
    assert run_workflow("testapp.parent_of_failure").startswith(
        "builtins.KeyError: 'no such thing'"
    )


def test_unfinished_children_are_canceled_when_the_parent_ends(drive):
    child_id = run_workflow("testapp.parent_of_waiter")
    child = WorkflowExecution.objects.get(pk=child_id)
    assert child.cancel_requested
    drive(child.pk)
    assert WorkflowExecution.objects.get(pk=child_id).status == ExecutionStatus.CANCELED


def test_canceling_a_parent_cancels_its_child(drive):
    parent_id = start_workflow("testapp.parent_waiting_on_child")
    with pytest.raises(WorkflowBlocked):
        drive(parent_id)
    child = WorkflowExecution.objects.get(parent_id=parent_id)
    cancel_workflow(parent_id)
    drive(parent_id)
    with pytest.raises(WorkflowCanceled):
        wait_workflow(parent_id)
    assert WorkflowExecution.objects.get(pk=child.pk).status == ExecutionStatus.CANCELED


def test_workflow_timeout_from_the_start(drive):
    execution_id = start_workflow("testapp.timer_probe", seconds=3600, execution_timeout=60)
    drive(execution_id)
    with pytest.raises(WorkflowTimedOut):
        wait_workflow(execution_id)
    assert HistoryEvent.objects.filter(
        execution_id=execution_id, kind=EventKind.WORKFLOW_TIMED_OUT
    ).exists()
    assert not HistoryEvent.objects.filter(kind=EventKind.TIMER_FIRED).exists()


def test_workflow_timeout_from_its_definition():
    with pytest.raises(WorkflowTimedOut):
        run_workflow("testapp.slow_with_default_timeout")
    execution = WorkflowExecution.objects.get()
    assert (execution.timeout_at - execution.created_at).total_seconds() == pytest.approx(30, abs=1)


@pytest.mark.parametrize(
    ("policy", "after_completed", "after_failed"),
    [
        ("return_existing", "same", "same"),
        ("allow_duplicate", "new", "new"),
        ("allow_duplicate_failed_only", "same", "new"),
    ],
)
def test_id_reuse_policy(drive, policy, after_completed, after_failed):
    done = start_workflow("testapp.add_twice", workflow_id="ok", a=1, b=1)
    drive(done)
    failed = start_workflow("testapp.raises_directly", workflow_id="bad")
    drive(failed)
    again = start_workflow("testapp.add_twice", workflow_id="ok", a=1, b=1, id_reuse_policy=policy)
    assert (again == done) == (after_completed == "same")
    again = start_workflow("testapp.raises_directly", workflow_id="bad", id_reuse_policy=policy)
    assert (again == failed) == (after_failed == "same")


def test_a_running_execution_is_returned_whatever_the_policy():
    first = start_workflow("testapp.add_twice", workflow_id="live", a=1, b=1)
    again = start_workflow(
        "testapp.add_twice", workflow_id="live", a=1, b=1, id_reuse_policy="allow_duplicate"
    )
    assert again == first


def test_unknown_id_reuse_policy_is_refused():
    with pytest.raises(ValueError, match="id_reuse_policy must be one of"):
        start_workflow("testapp.add_twice", workflow_id="x", id_reuse_policy="nope", a=1, b=1)
    assert not WorkflowExecution.objects.exists()
