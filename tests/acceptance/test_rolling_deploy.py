"""A rolling deploy as users run one: a worker with the old code and one with the new code
share the database (tests/testapp/deploy_flows.py holds the code only the new one has)."""

import time

from django_durable import store, wait_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, Worker, WorkflowExecution
from tests.testapp.models import Effect

from .conftest import wait_until

OLD_CODE = {"DURABLE_TEST_NEW_CODE": "0"}
NEW_CODE = {"DURABLE_TEST_NEW_CODE": "1"}


def test_new_workflows_wait_for_a_worker_with_the_new_code(start_worker):
    old = start_worker("--procs", "2", env=OLD_CODE)
    wait_until(lambda: Worker.objects.exists(), timeout=30, message="the old worker never started")
    # This process has the old code too: start the executions as the new code's callers do.
    ids = [store.start_execution("testapp.new_flow", {"n": n})[0] for n in range(10)]

    time.sleep(3)  # the old worker is woken and sweeps many times meanwhile
    executions = WorkflowExecution.objects.filter(pk__in=ids)
    assert set(executions.values_list("status", flat=True)) == {ExecutionStatus.RUNNING}
    assert set(executions.values_list("lease_owner", flat=True)) == {""}  # never claimed
    assert not HistoryEvent.objects.exclude(kind=EventKind.WORKFLOW_STARTED).exists()
    waiting = store.unrunnable_work()["workflows"]
    assert waiting["testapp.new_flow"]["count"] == 10  # visible: nobody can run them yet

    start_worker("--procs", "2", env=NEW_CODE)
    assert [wait_workflow(pk, timeout=60) for pk in ids] == [n * 10 for n in range(10)]
    assert Effect.objects.filter(name="new_step").count() == 10
    # The old worker, running all along, never took (and failed) a new activity either.
    assert set(ActivityTask.objects.values_list("attempt", flat=True)) == {1}
    assert old.process.poll() is None
    assert store.unrunnable_work() == {"workflows": {}, "activities": {}}
