"""Retention: durable_prune deletes old ended executions and nothing else."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_durable import run_workflow, start_workflow
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution

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
