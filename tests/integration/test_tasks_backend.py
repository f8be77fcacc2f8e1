"""`DurableBackend`: Django's tasks framework run as durable executions.

Each test enqueues `@task` functions (tests/integration/task_functions.py) through Django's
own API on a `DurableBackend` configured with `override_settings(TASKS=...)`, and drives
the executions through the engine: inline (`drive`), or step by step as a worker would
(claim and run a workflow task, claim and run an activity attempt).
"""

import importlib
import sys
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_durable import PayloadError, cancel_workflow, start_workflow, store
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.engine.activities import execute_activity, settle_activity
from django_durable.engine.workflow_task import run_workflow_tasks
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from django_durable.registry import register
from django_durable.tasks import DurableBackend
from django_durable.tasks.framework import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_durable.tasks.runner import RUN_TASK, attempt_owner
from tests.integration import task_functions as tasks

pytestmark = pytest.mark.django_db(transaction=True)

DURABLE_TASKS = {
    "default": {
        "BACKEND": "django_durable.tasks.DurableBackend",
        "QUEUES": ["default", "emails"],
    }
}


@pytest.fixture(autouse=True)
def durable_tasks():
    tasks.CALLS.clear()
    with override_settings(TASKS=DURABLE_TASKS):
        yield task_backends["default"]


SIGNALS = {"enqueued": task_enqueued, "started": task_started, "finished": task_finished}


@pytest.fixture
def received():
    """The signals the tasks sent, as (signal, status of the result it carried), in order."""
    seen = []
    for name, signal in SIGNALS.items():

        def handler(sender, task_result, name=name, **kwargs):
            assert sender is DurableBackend
            seen.append((name, str(task_result.status)))

        signal.connect(handler, dispatch_uid=f"test-tasks-{name}", weak=False)
    yield seen
    for name, signal in SIGNALS.items():
        signal.disconnect(dispatch_uid=f"test-tasks-{name}")


def run_workflow_task(now=None):
    """Claim every due workflow task and run it, as a worker does; how many ran."""
    claims = store.claim_workflow_tasks("test-worker", 10, now=now)
    async_to_sync(run_workflow_tasks)(claims, now=now)
    return len(claims)


def claim_attempts(queues=None, now=None):
    return store.claim_activity_tasks("test-worker", 10, queues=queues, now=now)


def run_attempts(claims):
    for claim in claims:
        settle_activity(claim, execute_activity(claim))


def execution_of(result):
    return WorkflowExecution.objects.get(pk=result.id)


# -- the backend ------------------------------------------------------------------------


def test_the_backend_is_what_tasks_names_and_says_what_it_supports(durable_tasks):
    assert isinstance(durable_tasks, DurableBackend)
    assert durable_tasks.supports_defer is True
    assert durable_tasks.supports_async_task is True
    assert durable_tasks.supports_get_result is True
    assert durable_tasks.supports_priority is False
    assert list(durable_tasks.check()) == []


@override_settings(TASKS={"default": {**DURABLE_TASKS["default"], "QUEUES": ["q" * 101]}})
def test_a_queue_name_too_long_to_store_is_a_check_error():
    [error] = task_backends["default"].check()
    assert (error.id, error.msg) == (
        "django_durable.E101",
        "The task backend 'default' lists a queue name of 101 characters; queue names are "
        "1 to 100 characters long.",
    )


def test_django_durable_registers_the_workflow_and_the_activity_that_run_tasks():
    assert RUN_TASK in register.workflows
    definition = register.get_activity(RUN_TASK)
    assert definition.retry_policy.maximum_attempts == 1  # a task runs once, like Django's
    assert definition.queue == "default"  # each call goes to its task's queue instead


def test_without_the_tasks_framework_the_backend_says_what_to_install(monkeypatch):
    with monkeypatch.context() as patch, pytest.raises(ImproperlyConfigured) as raised:
        for name in ("django.tasks", "django_tasks"):  # neither can be imported
            patch.setitem(sys.modules, name, None)
        patch.delitem(sys.modules, "django_durable.tasks.framework")
        importlib.import_module("django_durable.tasks.framework")
    assert str(raised.value) == (
        "django_durable.tasks.DurableBackend needs Django's tasks framework: Django 6.0 or "
        "later has it; on Django < 6.0 run `pip install django-tasks` "
        "(or `pip install django-durable[tasks]`)."
    )


# -- validation: refused before anything is stored -------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: tasks.task(lambda: None),
            "Task function must be defined at a module level.",
        ),
        (
            lambda: tasks.task(takes_context=True)(tasks.not_a_task),
            "Task takes context but does not have a first argument of 'context'.",
        ),
        (
            lambda: tasks.task(priority=10)(tasks.not_a_task),
            "Backend does not support setting priority of tasks.",
        ),
        (
            lambda: tasks.add.using(priority=5),
            "Backend does not support setting priority of tasks.",
        ),
        (
            lambda: tasks.add.using(queue_name="nope"),
            "Queue 'nope' is not valid for backend.",
        ),
        (
            lambda: tasks.add.using(run_after=timezone.now().replace(tzinfo=None)),
            "run_after must be an aware datetime.",
        ),
        (
            lambda: tasks.add.using(run_after=timezone.now() + timedelta(days=365 * 101)),
            "run_after must be at most 100 years ahead.",
        ),
    ],
)
def test_an_invalid_task_is_refused_with_djangos_message(make, message):
    with pytest.raises(InvalidTask) as raised:
        make()
    assert str(raised.value) == message


@override_settings(TASKS={"default": {**DURABLE_TASKS["default"], "QUEUES": []}})
def test_any_queue_name_is_valid_without_queues_but_not_one_too_long_to_store():
    assert tasks.add.using(queue_name="q" * 100).queue_name == "q" * 100
    with pytest.raises(InvalidTask) as raised:
        tasks.add.using(queue_name="q" * 101)
    assert str(raised.value) == "Queue name must be 1 to 100 characters long, not 101."


def test_arguments_that_are_not_json_are_refused_before_anything_is_stored():
    with pytest.raises(TypeError) as raised:
        tasks.add.enqueue(object(), 1)
    assert str(raised.value) == "Unsupported type: <class 'object'>"
    with pytest.raises(ValueError, match=r"^Unsupported value"):
        tasks.add.enqueue(b"\xff", 1)
    with pytest.raises(PayloadError) as raised:
        tasks.add.enqueue(float("nan"), 1)
    assert str(raised.value).startswith(  # Python 3.12 adds the value: "...compliant: nan."
        "The arguments of task 'tests.integration.task_functions.add' must be "
        "JSON-serializable: Out of range float values are not JSON compliant"
    )
    assert not WorkflowExecution.objects.exists()


async def test_arguments_that_are_not_json_are_refused_async():
    with pytest.raises(TypeError, match=r"^Unsupported type: <class 'object'>$"):
        await tasks.add.aenqueue(object(), 1)
    assert not await WorkflowExecution.objects.aexists()


# -- a result's life --------------------------------------------------------------------


def test_a_result_goes_from_ready_to_running_to_successful(received):
    result = tasks.add.enqueue(1, b=2)
    execution = execution_of(result)
    assert execution.workflow_name == RUN_TASK
    assert uuid.UUID(result.id) == execution.pk
    assert (result.status, result.args, result.kwargs) == (TaskResultStatus.READY, [1], {"b": 2})
    assert result.enqueued_at == execution.created_at
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None,) * 3
    assert (result.errors, result.worker_ids, result.attempts) == ([], [], 0)
    assert not result.is_finished
    with pytest.raises(ValueError, match=r"^Task has not finished yet$"):
        _ = result.return_value
    assert received == [("enqueued", "READY")]

    assert run_workflow_task() == 1  # the workflow schedules the activity
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY

    [claim] = claim_attempts()  # a worker takes the attempt
    running = tasks.add.get_result(result.id)
    assert running.status == TaskResultStatus.RUNNING
    assert running.last_attempted_at == ActivityTask.objects.get().started_at

    run_attempts([claim])
    assert tasks.CALLS == [("add", 1, 2)]
    done = tasks.add.get_result(result.id)  # the task's own outcome, before the workflow's
    assert execution_of(result).status == ExecutionStatus.RUNNING
    assert (done.status, done.return_value, done.is_finished) == (
        TaskResultStatus.SUCCESSFUL,
        3,
        True,
    )
    assert (done.worker_ids, done.attempts) == ([attempt_owner()], 1)
    assert done.started_at == done.last_attempted_at == running.last_attempted_at
    assert done.finished_at == ActivityTask.objects.get().finished_at >= done.started_at
    assert received == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]

    assert run_workflow_task() == 1  # the workflow completes with the task's value
    assert execution_of(result).status == ExecutionStatus.COMPLETED
    assert execution_of(result).result == 3
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        3,
        1,
    )


async def test_a_result_goes_from_ready_to_successful_async(adrive):
    result = await tasks.add.aenqueue(2, 3)
    assert (await tasks.add.aget_result(result.id)).status == TaskResultStatus.READY
    await adrive(uuid.UUID(result.id))
    await result.arefresh()
    assert (result.status, result.return_value, result.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        5,
        1,
    )


def test_an_async_task_runs_too(drive):
    result = tasks.add_async.enqueue(4, 5)
    assert drive(uuid.UUID(result.id)).status == ExecutionStatus.COMPLETED
    assert tasks.add_async.get_result(result.id).return_value == 9


def test_a_return_value_is_normalized_as_json(drive):
    result = tasks.pair.enqueue(1, "x")
    drive(uuid.UUID(result.id))
    assert tasks.pair.get_result(result.id).return_value == [1, "x"]


def test_get_result_of_another_task_is_a_mismatch():
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(Exception) as raised:
        tasks.pair.get_result(result.id)
    assert type(raised.value).__name__ == "TaskResultMismatch"
    assert (
        str(raised.value) == "Task does not match (received 'tests.integration.task_functions.add')"
    )


# -- errors -------------------------------------------------------------------------------


def test_a_task_that_raises_is_failed_at_once_with_its_exception(drive, received):
    result = tasks.explode.enqueue("no luck")
    assert drive(uuid.UUID(result.id)).status == ExecutionStatus.FAILED
    failed = tasks.explode.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    [error] = failed.errors
    assert error.exception_class_path == "tests.integration.task_functions.TaskBoom"
    assert error.exception_class is tasks.TaskBoom
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "raise TaskBoom(message)" in error.traceback
    assert error.traceback.endswith("TaskBoom: no luck\n")
    assert failed.attempts == 1  # not retried: DURABLE["RETRY_POLICY"] does not apply
    assert ActivityTask.objects.get().attempt == 1
    assert failed.finished_at == ActivityTask.objects.get().finished_at
    with pytest.raises(ValueError, match=r"^Task failed$"):
        _ = failed.return_value
    assert received == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "FAILED")]


def test_a_return_value_that_is_not_json_fails_the_task(drive):
    result = tasks.unstorable.enqueue()
    drive(uuid.UUID(result.id))
    failed = tasks.unstorable.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class_path == "builtins.TypeError"
    assert failed.errors[0].traceback.endswith("TypeError: Unsupported type: <class 'object'>\n")


def test_a_task_canceled_before_it_ran_is_failed():
    result = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)
    run_workflow_task()  # it sleeps until run_after
    cancel_workflow(uuid.UUID(result.id), "not needed")
    run_workflow_task()
    failed = tasks.add.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in failed.errors] == [
        "django_durable.exceptions.WorkflowCanceled"
    ]
    assert failed.finished_at == execution_of(result).finished_at is not None
    assert tasks.CALLS == []


@pytest.mark.parametrize("result_id", ["5e1c0c4e-0000-4000-8000-000000000002", "not-a-uuid", ""])
def test_get_result_of_an_unknown_id_raises(result_id):
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(result_id)


def test_an_execution_that_runs_no_task_has_no_result():
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(str(execution_id))


@override_settings(
    TASKS={**DURABLE_TASKS, "other": {"BACKEND": "django_durable.tasks.DurableBackend"}}
)
def test_a_result_belongs_to_its_backend():
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["other"].get_result(result.id)


async def test_aget_result_of_an_unknown_id_raises_async():
    with pytest.raises(TaskResultDoesNotExist):
        await tasks.add.aget_result(str(uuid.uuid4()))


# -- context, queues, run_after -------------------------------------------------------------


def test_a_task_that_takes_context_gets_its_running_result(drive):
    result = tasks.with_context.enqueue("ctx")
    drive(uuid.UUID(result.id))
    assert tasks.with_context.get_result(result.id).return_value == {
        "label": "ctx",
        "attempt": 1,
        "id": result.id,
        "status": "RUNNING",
        "args": ["ctx"],
        "kwargs": {},
        "worker_ids": [attempt_owner()],
    }


def test_a_task_runs_on_its_queue_for_the_workers_that_serve_it():
    result = tasks.add.using(queue_name="emails").enqueue(1, 2)
    assert result.task.queue_name == "emails"
    run_workflow_task()
    assert ActivityTask.objects.get().queue == "emails"
    assert claim_attempts(queues=["default"]) == []  # a worker started with --queue default
    run_attempts(claim_attempts(queues=["emails"]))  # one started with --queue emails
    done = tasks.add.get_result(result.id)
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert done.task.queue_name == "emails"


def test_run_after_is_a_durable_timer():
    run_after = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=run_after).enqueue(1, 2)
    assert result.task.run_after == run_after
    assert run_workflow_task() == 1
    timer = HistoryEvent.objects.get(kind=EventKind.TIMER_STARTED)
    assert 3590 < timer.data["duration"] <= 3600
    assert not ActivityTask.objects.exists()
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY
    assert run_workflow_task() == 0  # nothing due before run_after
    assert run_workflow_task(now=run_after + timedelta(seconds=1)) == 1
    run_attempts(claim_attempts(now=run_after + timedelta(seconds=1)))
    done = tasks.add.get_result(result.id)
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert done.task.run_after == run_after


def test_run_after_in_the_past_runs_at_once():
    result = tasks.add.using(run_after=timezone.now() - timedelta(hours=1)).enqueue(1, 2)
    run_workflow_task()
    assert not HistoryEvent.objects.filter(kind=EventKind.TIMER_STARTED).exists()
    assert ActivityTask.objects.get().status == ActivityStatus.QUEUED
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY


# -- inside the caller's transaction ------------------------------------------------------


class Rollback(Exception):
    """Raised to leave an atomic block the way an error in the caller's code would."""


def test_an_enqueue_commits_with_the_callers_transaction(received):
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert received == []  # not enqueued until the caller commits
    assert received == [("enqueued", "READY")]
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY


def test_an_enqueue_rolls_back_with_the_callers_transaction(received):
    with pytest.raises(Rollback), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert tasks.add.get_result(result.id).status == TaskResultStatus.READY
        raise Rollback
    assert not WorkflowExecution.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(result.id)
    assert received == []
