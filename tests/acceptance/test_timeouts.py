"""Retries and timeouts under a real worker: back-off spacing, runaway processes stopped."""

import itertools

import pytest

from django_durable import WorkflowCanceled, cancel_workflow, start_workflow, wait_workflow
from django_durable.constants import ActivityStatus
from django_durable.models import ActivityTask
from tests.processes import alive
from tests.testapp.models import Effect

from .conftest import wait_until


def test_retries_are_spaced_by_the_backoff(start_worker):
    start_worker("--procs", "1", "--tick", "0.1")
    execution_id = start_workflow("testapp.retried", name="spaced", failures=2)
    assert wait_workflow(execution_id, timeout=30) == 3
    starts = list(
        Effect.objects.filter(name="spaced").order_by("key").values_list("created_at", flat=True)
    )
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 2
    assert 0.5 <= gaps[0] < 1.5  # initial_interval 0.5
    assert 1.0 <= gaps[1] < 2.0  # then doubled


def test_a_busy_loop_is_stopped_at_its_timeout_and_its_neighbour_survives(start_worker):
    start_worker("--procs", "2")
    execution_id = start_workflow("testapp.runaway", timeout=1.5)
    result = wait_workflow(execution_id, timeout=60)
    assert result == {
        "spin": "django_durable.exceptions.ActivityTimeoutError",
        "neighbour": "neighbour",
    }
    spinner = ActivityTask.objects.get(activity_name="testapp.spin")
    assert (spinner.status, spinner.attempt) == (ActivityStatus.TIMED_OUT, 1)
    assert "start_to_close_timeout of 1.5 s" in spinner.error["message"]
    pid = int(Effect.objects.get(name="spinner").key)
    wait_until(lambda: not alive(pid), timeout=10, message="the busy loop still runs")
    neighbour = ActivityTask.objects.get(activity_name="testapp.slow_effect")
    # Only the runaway's own process was stopped: the neighbour ran once, uncharged (G12).
    assert (neighbour.status, neighbour.attempt) == (ActivityStatus.COMPLETED, 1)
    assert Effect.objects.filter(name="neighbour").count() == 1


def test_a_silent_activity_is_stopped_at_its_heartbeat_timeout(start_worker):
    start_worker("--procs", "1")
    execution_id = start_workflow("testapp.silent", heartbeat_timeout=1.0)
    message = wait_workflow(execution_id, timeout=30)
    assert "heartbeat_timeout of 1 s" in message
    task = ActivityTask.objects.get()
    assert task.status == ActivityStatus.TIMED_OUT
    assert task.heartbeat_details == {"step": 1}


def test_cancel_tells_a_running_activity_through_its_heartbeat(start_worker):
    start_worker("--procs", "1")
    execution_id = start_workflow("testapp.hangs_in_activity", name="told")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    cancel_workflow(execution_id, reason="no longer needed")
    with pytest.raises(WorkflowCanceled):
        wait_workflow(execution_id, timeout=30)
    assert ActivityTask.objects.get().status == ActivityStatus.CANCELED
    wait_until(
        lambda: Effect.objects.filter(name="told").exists(),
        timeout=10,
        message="the activity was not told to stop",
    )


def test_cancel_stops_an_activity_that_ignores_it(start_worker):
    start_worker("--procs", "1")
    execution_id = start_workflow("testapp.hangs_silently", name="deaf")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    cancel_workflow(execution_id)
    with pytest.raises(WorkflowCanceled):
        wait_workflow(execution_id, timeout=30)
    # Its only process is stopped after the cancel grace, so the next activity can run.
    follow_up = start_workflow("testapp.one_effect", name="after")
    assert wait_workflow(follow_up, timeout=30) == 1
    assert not Effect.objects.filter(name="deaf").exists()
