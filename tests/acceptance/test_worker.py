"""The worker as users run it: crash recovery, races, wakeups, timers, graceful stop."""

import signal
import time

import pytest
from django.db import connection
from django.db.models import Count

from django_durable import send_signal, start_workflow, wait_workflow
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from tests.testapp.models import Effect

from .conftest import status_of, wait_until

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="LISTEN/NOTIFY is PostgreSQL's"
)


def task_time(execution_id, kind):
    """The start time of the workflow task that recorded the first event of `kind`."""
    event = HistoryEvent.objects.get(execution_id=execution_id, kind=kind)
    return (
        HistoryEvent.objects.filter(
            execution_id=execution_id,
            kind=EventKind.WORKFLOW_TASK_STARTED,
            sequence__lt=event.sequence,
        )
        .order_by("-sequence")
        .first()
        .data["time"]
    )


def test_kill_9_between_activities_loses_nothing_and_repeats_nothing(start_worker):
    execution_id = start_workflow("testapp.onboard_user_short", user_id=1, wait_seconds=3)
    worker = start_worker("--procs", "2")
    wait_until(
        lambda: HistoryEvent.objects.filter(
            execution_id=execution_id, kind=EventKind.TIMER_STARTED
        ).exists(),
        timeout=30,
        message="the first activity did not complete",
    )
    worker.kill_group()
    assert status_of(execution_id) == ExecutionStatus.RUNNING
    start_worker("--procs", "2")
    assert wait_workflow(execution_id, timeout=30) == {"ok": True}
    assert Effect.objects.filter(name="welcome-1").count() == 1
    assert Effect.objects.filter(name="score-1").count() == 1


def test_kill_9_mid_activity_retries_it_after_the_lease(start_worker):
    execution_id = start_workflow("testapp.long_activity", name="long", seconds=2)
    worker = start_worker("--procs", "2")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    worker.kill_group()
    start_worker("--procs", "2")
    assert wait_workflow(execution_id, timeout=30) == "long"
    task = ActivityTask.objects.get()
    assert task.attempt == 2  # the cut-off attempt was retried as a new one, once
    assert HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_COMPLETED).count() == 1


def test_two_workers_racing_on_200_workflows(start_worker):
    ids = [start_workflow("testapp.one_effect", name=f"race-{i}") for i in range(200)]
    start_worker("--procs", "2", "--batch", "10")
    start_worker("--procs", "2", "--batch", "10")
    wait_until(
        lambda: WorkflowExecution.objects.filter(status=ExecutionStatus.COMPLETED).count() == 200,
        timeout=120,
        interval=0.2,
        message="not all 200 workflows completed",
    )
    assert not WorkflowExecution.objects.exclude(status=ExecutionStatus.COMPLETED).exists()
    assert Effect.objects.count() == 200
    assert not Effect.objects.values("name").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert ActivityTask.objects.filter(status=ActivityStatus.COMPLETED, attempt=1).count() == 200
    completed = HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_COMPLETED)
    assert completed.count() == 200
    for execution_id in ids[:20]:
        sequences = list(
            HistoryEvent.objects.filter(execution_id=execution_id).values_list(
                "sequence", flat=True
            )
        )
        assert sequences == list(range(1, len(sequences) + 1))


@postgres_only
def test_notify_wakes_the_worker_not_the_tick(start_worker):
    start_worker("--procs", "1", "--tick", "30")
    execution_id = start_workflow("testapp.collect_signals", count=1)
    wait_until(
        lambda: HistoryEvent.objects.filter(
            execution_id=execution_id, kind=EventKind.WORKFLOW_TASK_STARTED
        ).exists(),
        timeout=30,
    )
    time.sleep(0.3)
    sent = time.monotonic()
    send_signal(execution_id, "item", "now")
    assert wait_workflow(execution_id, timeout=5, poll=0.01) == ["now"]
    assert time.monotonic() - sent < 1.0


@postgres_only
def test_listener_reconnects_after_its_connection_is_killed(start_worker):
    worker = start_worker("--procs", "1", "--tick", "30")

    def listener_pids():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                [f"django_durable listener {worker.pid}"],
            )
            return [row[0] for row in cursor.fetchall()]

    [old_pid] = wait_until(listener_pids, timeout=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    execution_id = start_workflow("testapp.one_effect", name="during-outage")
    assert wait_workflow(execution_id, timeout=10) == 1
    [new_pid] = wait_until(listener_pids, timeout=10)
    assert new_pid != old_pid


def test_a_2_second_timer_fires_between_2_and_2_5_seconds(start_worker):
    start_worker("--procs", "1")
    execution_id = start_workflow("testapp.timer_probe", seconds=2)
    wait_workflow(execution_id, timeout=30)
    waited = task_time(execution_id, EventKind.TIMER_FIRED) - task_time(
        execution_id, EventKind.TIMER_STARTED
    )
    assert 2.0 <= waited <= 2.5


def test_sigterm_lets_the_running_activity_finish(start_worker):
    execution_id = start_workflow("testapp.long_activity", name="finish", seconds=2)
    worker = start_worker("--procs", "1", "--grace", "20")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - started < 20
    task = ActivityTask.objects.get()
    assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 1)
    assert Effect.objects.filter(name="finish").count() == 1
    start_worker("--procs", "1")
    assert wait_workflow(execution_id, timeout=30) == "finish"
    assert HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_COMPLETED).count() == 1


def test_sigterm_past_the_grace_releases_the_activity_for_another_worker(start_worker):
    execution_id = start_workflow("testapp.long_activity", name="released", seconds=3)
    worker = start_worker("--procs", "1", "--grace", "0.5")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert ActivityTask.objects.get().status == ActivityStatus.QUEUED  # released, not leased
    start_worker("--procs", "1")
    assert wait_workflow(execution_id, timeout=30) == "released"
    task = ActivityTask.objects.get()
    # Stopped by the operator, not failed: it ran again as the same attempt, uncharged.
    assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 1)
    assert HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_COMPLETED).count() == 1
    assert Effect.objects.filter(name="released").count() == 1  # the killed attempt never wrote


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs a server to cut off")
def test_sigterm_while_the_database_is_gone_still_exits_cleanly(start_worker):
    """A database restarting during shutdown costs a log line, not a traceback and exit 1."""
    import psycopg

    start_workflow("testapp.long_activity", name="cut off", seconds=2)
    worker = start_worker("--procs", "1", "--grace", "20")
    wait_until(
        lambda: ActivityTask.objects.filter(status=ActivityStatus.RUNNING).exists(), timeout=30
    )
    name = connection.settings_dict["NAME"]
    connection.close()
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            worker.signal(signal.SIGTERM)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
            assert worker.wait(timeout=60) == 0, worker.output()
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert "Traceback" not in worker.output()
    assert "Could not record the worker's stop" in worker.output()
