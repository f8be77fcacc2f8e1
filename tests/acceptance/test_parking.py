"""G4 under real workers: incompatible code parks an execution; compatible code resumes it."""

import signal

from django_durable import start_workflow, wait_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import HistoryEvent, WorkflowExecution

from .conftest import status_of, wait_until


def test_a_renamed_activity_parks_and_restored_code_resumes(start_worker, monkeypatch):
    execution_id = start_workflow("testapp.deployed_variant")
    monkeypatch.setenv("DURABLE_TEST_VARIANT", "old")
    old = start_worker("--procs", "1")
    wait_until(
        lambda: HistoryEvent.objects.filter(kind=EventKind.TIMER_STARTED).exists(), timeout=30
    )
    old.signal(signal.SIGTERM)
    old.wait(timeout=30)

    monkeypatch.setenv("DURABLE_TEST_VARIANT", "new")
    new = start_worker("--procs", "1")
    wait_until(lambda: status_of(execution_id) == ExecutionStatus.BLOCKED, timeout=30)
    execution = WorkflowExecution.objects.get()
    assert "history expects activity scheduled 'testapp.add'" in execution.error["message"]
    assert "testapp.async_double" in execution.error["message"]
    history = list(HistoryEvent.objects.values_list("sequence", "kind"))
    new.signal(signal.SIGTERM)
    new.wait(timeout=30)
    assert list(HistoryEvent.objects.values_list("sequence", "kind")) == history  # untouched

    monkeypatch.setenv("DURABLE_TEST_VARIANT", "old")
    start_worker("--procs", "1")
    assert wait_workflow(execution_id, timeout=30) == 3
