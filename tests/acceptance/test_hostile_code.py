"""User code that tries to take the worker down (G11), and faults that must cost only their
own work (G12), under a real worker process."""

import os
import signal
import time

import pytest
from django.db import transaction

from django_durable import start_workflow, wait_workflow
from django_durable.constants import ActivityStatus, ExecutionStatus
from django_durable.models import ActivityTask, WorkflowExecution
from django_durable.store.db import notify
from tests.processes import alive
from tests.testapp.models import Effect

from .conftest import status_of, wait_until

NEIGHBOURS = 3


def _assert_neighbours_untouched(result: dict) -> None:
    assert result["neighbours"] == [f"neighbour{i}" for i in range(NEIGHBOURS)]
    for task in ActivityTask.objects.filter(activity_name="testapp.counted_sleep"):
        assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 1)
    for i in range(NEIGHBOURS):  # each started once: neither charged nor re-run
        assert Effect.objects.filter(name=f"neighbour{i}:start").count() == 1


def _assert_worker_still_works(worker) -> None:
    assert worker.process.poll() is None, worker.output()
    follow_up = start_workflow("testapp.workflow_misbehaves", how="nothing")
    assert wait_workflow(follow_up, timeout=60) == "survived"


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("sys_exit", "builtins.SystemExit: 3"),
        ("keyboard_interrupt", "builtins.KeyboardInterrupt"),
        ("base_exception", "builtins.GeneratorExit: not really"),
        ("unpicklable", "Unpicklable: holds a lambda"),
        ("not_json", "must be JSON-serializable"),
        ("os_exit", "ActivityProcessDied: The process running activity 'testapp.misbehave'"),
        ("segfault", "killed by SIGSEGV"),
    ],
)
def test_an_activity_that_ends_badly_costs_only_its_own_attempt(start_worker, how, error):
    worker = start_worker("--procs", str(NEIGHBOURS + 1))
    execution_id = start_workflow(
        "testapp.misbehaving_neighbourhood", how=how, neighbours=NEIGHBOURS, seconds=2.0
    )
    result = wait_workflow(execution_id, timeout=90)
    assert error in result["misbehaving"]
    misbehaving = ActivityTask.objects.get(activity_name="testapp.misbehave")
    assert (misbehaving.status, misbehaving.attempt) == (ActivityStatus.FAILED, 1)
    _assert_neighbours_untouched(result)
    _assert_worker_still_works(worker)


def test_a_timeout_stops_only_the_runaway(start_worker):
    worker = start_worker("--procs", str(NEIGHBOURS + 1))
    execution_id = start_workflow(
        "testapp.misbehaving_neighbourhood",
        how="spin",
        neighbours=NEIGHBOURS,
        seconds=3.0,
        timeout=1.0,
    )
    result = wait_workflow(execution_id, timeout=90)
    assert "ActivityTimeoutError" in result["misbehaving"]
    assert "start_to_close_timeout of 1 s" in result["misbehaving"]
    _assert_neighbours_untouched(result)
    _assert_worker_still_works(worker)


def test_megabytes_of_output_do_not_hurt(start_worker):
    start_worker("--procs", "2")
    execution_id = start_workflow(
        "testapp.misbehaving_neighbourhood", how="print_megabytes", neighbours=1, seconds=0.1
    )
    result = wait_workflow(execution_id, timeout=60)
    assert result == {"misbehaving": "printed", "neighbours": ["neighbour0"]}


@pytest.mark.parametrize(
    ("how", "status", "message"),
    [
        ("spin", ExecutionStatus.BLOCKED, "ran for more than 2 s without yielding"),
        ("time_sleep", ExecutionStatus.BLOCKED, "ran for more than 2 s without yielding"),
        ("system_exit", None, "SystemExit"),
        ("keyboard_interrupt", None, "KeyboardInterrupt"),
    ],
)
def test_workflow_code_cannot_take_the_worker_down(start_worker, how, status, message):
    worker = start_worker("--procs", "1")
    execution_id = start_workflow("testapp.workflow_misbehaves", how=how)
    wait_until(
        lambda: status_of(execution_id) in (ExecutionStatus.BLOCKED, ExecutionStatus.FAILED),
        timeout=60,
        message=f"the execution is still {status_of(execution_id)}",
    )
    execution = WorkflowExecution.objects.get(pk=execution_id)
    if status is not None:
        assert execution.status == status
    assert message in f"{execution.error['type']}: {execution.error['message']}"
    _assert_worker_still_works(worker)


def test_activity_processes_die_with_their_worker(start_worker):
    worker = start_worker("--procs", "2")
    start_workflow("testapp.misbehaving_neighbourhood", how="spin", neighbours=1, seconds=60)
    wait_until(
        lambda: Effect.objects.filter(name="neighbour0:start").exists(),
        timeout=60,
        message="the activities did not start",
    )
    pids = [
        int(pid)
        for pid in os.popen(f"pgrep -g {worker.pid}").read().split()
        if int(pid) != worker.pid
    ]
    assert len(pids) >= 2, pids  # the activity processes (and multiprocessing's helper)
    worker.process.send_signal(signal.SIGKILL)  # the worker alone, not its process group
    worker.process.wait(timeout=10)
    wait_until(
        lambda: not any(alive(pid) for pid in pids),
        timeout=10,
        message="activity processes outlived their worker",
    )


def test_ctrl_c_lets_running_activities_finish(start_worker):
    worker = start_worker("--procs", "2", "--grace", "30")
    execution_id = start_workflow("testapp.lapsing_activity", seconds=2.0)
    wait_until(
        lambda: Effect.objects.filter(name="lapsing:start").exists(),
        timeout=60,
        message="the activity did not start",
    )
    os.killpg(worker.pid, signal.SIGINT)  # what a terminal sends the whole process group
    assert worker.wait(timeout=30) == 0, worker.output()
    task = ActivityTask.objects.get()
    assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 1)
    assert Effect.objects.filter(name="lapsing:end").count() == 1
    assert status_of(execution_id) == ExecutionStatus.RUNNING  # its next task awaits a worker


def test_a_retaken_lease_keeps_the_new_attempt_watched(start_worker):
    """The worker takes back its own lapsed lease: the new attempt is the one it tracks."""
    start_worker("--procs", "2")
    execution_id = start_workflow("testapp.lapsing_activity", seconds=6.0)
    wait_until(
        lambda: Effect.objects.filter(name="lapsing:start").exists(),
        timeout=60,
        message="the activity did not start",
    )
    time.sleep(5.0 - 0.5)
    with transaction.atomic():  # as if the worker had stalled past its lease
        ActivityTask.objects.filter(status=ActivityStatus.RUNNING).update(
            lease_owner="lapsed", lease_until=ActivityTask.objects.get().started_at
        )
        notify("activity", "lapsed")
    assert wait_workflow(execution_id, timeout=60) == "lapsing"
    task = ActivityTask.objects.get()
    assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 2)
    assert Effect.objects.filter(name="lapsing:start").count() == 2
