"""Retention: durable_prune deletes old ended executions and nothing else."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_durable import run_workflow, start_workflow, store
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from django_durable.runtime.events import Event

pytestmark = pytest.mark.django_db(transaction=True)


def prune(*args):
    out = io.StringIO()
    call_command("durable_prune", *args, stdout=out)
    return out.getvalue()


def test_prune_deletes_old_ended_executions_with_their_history():
    for _ in range(3):
        run_workflow("testapp.add_twice", a=1, b=1)
    child = run_workflow("testapp.parent_of_waiter")
    WorkflowExecution.objects.filter(pk=child).update(status="running")  # not ended yet
    recent = run_workflow("testapp.add_twice", a=2, b=2)
    assert recent == 6
    live = start_workflow("testapp.collect_signals", count=1)
    WorkflowExecution.objects.exclude(input={"a": 2, "b": 2}).update(
        finished_at=timezone.now() - timedelta(days=40)
    )
    assert prune("--older-than", "30", "--batch", "2").startswith("Deleted 3 execution(s)")
    left = set(WorkflowExecution.objects.values_list("workflow_name", flat=True))
    assert left == {"testapp.add_twice", "testapp.parent_of_waiter", "testapp.collect_signals"}
    assert WorkflowExecution.objects.filter(pk=live).exists()
    assert WorkflowExecution.objects.filter(workflow_name="testapp.add_twice").count() == 1
    kept = set(WorkflowExecution.objects.values_list("pk", flat=True))
    assert set(HistoryEvent.objects.values_list("execution_id", flat=True)) <= kept
    assert set(ActivityTask.objects.values_list("execution_id", flat=True)) <= kept


def test_prune_refuses_bad_options():
    with pytest.raises(CommandError, match="--older-than must not be negative"):
        prune("--older-than", "-1")


@pytest.mark.parametrize("parent_status", [ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED])
def test_prune_keeps_an_ended_child_whose_live_parent_has_not_received_it(parent_status):
    parent_id = start_workflow("testapp.parent_waiting_on_child")
    [parent] = store.claim_workflow_tasks("w1", 1)
    child_id = uuid.uuid4()
    start_child = Event(
        EventKind.CHILD_WORKFLOW_STARTED,
        1,
        "testapp.collect_signals",
        {"input": {"count": 1}, "execution_id": str(child_id)},
    )
    store.record_workflow_task(parent, history_length=1, events=[start_child])
    [child] = store.claim_workflow_tasks("w1", 1, execution_ids=[child_id])
    done = Event(EventKind.WORKFLOW_COMPLETED, data={"result": ["x"]})
    store.record_workflow_task(child, history_length=1, events=[done])
    WorkflowExecution.objects.filter(pk=parent_id).update(status=parent_status)
    WorkflowExecution.objects.update(finished_at=timezone.now() - timedelta(days=40))

    assert prune("--older-than", "30").startswith("Deleted 0 execution(s)")
    assert WorkflowExecution.objects.filter(pk=child_id).exists()  # its result still awaited

    WorkflowExecution.objects.filter(pk=child_id).update(delivered_to_parent=True)
    assert prune("--older-than", "30").startswith("Deleted 1 execution(s)")
    assert list(WorkflowExecution.objects.values_list("pk", flat=True)) == [parent_id]


def test_prune_deletes_the_rows_of_workers_silent_since_the_cut_off():
    from django_durable.models import Worker

    now = timezone.now()
    for name, silent_days, stopped in [
        ("old-stopped", 40, True),
        ("old-crashed", 35, False),
        ("recent-stopped", 2, True),
        ("live", 0, False),
    ]:
        beat = now - timedelta(days=silent_days)
        Worker.objects.create(
            id=name,
            hostname="h",
            pid=1,
            started_at=beat,
            heartbeat_at=beat,
            stopped_at=beat if stopped else None,
        )
    out = prune("--older-than", "30")
    assert out.rstrip().endswith("and 2 worker row(s) silent since then.")
    assert set(Worker.objects.values_list("pk", flat=True)) == {"recent-stopped", "live"}
