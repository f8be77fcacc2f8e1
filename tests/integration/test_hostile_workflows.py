"""Hostile workflow code through `run_workflow` and the store (issue 7): the execution ends
with a clear outcome, recorded like any other, and nothing breaks the engine."""

import pytest
from asgiref.sync import async_to_sync

from django_durable import WorkflowFailed, run_workflow, start_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine.inline import InlineRunner
from django_durable.engine.sticky import StickyCache
from django_durable.models import HistoryEvent, WorkflowExecution
from tests.testapp.runtime_hostile import BAD_TIMERS

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = "must be a finite number of seconds, at most 3153600000 (100 years)"


def failed_with(workflow: str, **inputs) -> WorkflowFailed:
    with pytest.raises(WorkflowFailed) as caught:
        run_workflow(workflow, **inputs)
    execution = WorkflowExecution.objects.get()
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error["message"] == caught.value.message
    return caught.value


def commands_of(kind: str) -> list[int]:
    return list(HistoryEvent.objects.filter(kind=kind).values_list("command_seq", flat=True))


# -- timers out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(BAD_TIMERS))
def test_out_of_range_timer_fails_the_execution_with_its_limit(how):
    error = failed_with("testapp.out_of_range_timer", how=how)
    if how == "sleep_str":
        assert error.error_type == "builtins.TypeError"
        assert error.message == "ctx.sleep() must be a number of seconds, not '5'."
    else:
        assert error.error_type == "builtins.ValueError"
        assert LIMIT in error.message
    assert commands_of(EventKind.TIMER_STARTED) == []


@pytest.mark.parametrize("how", ["sleep_inf", "signal_huge", "asyncio_inf"])
def test_workflow_that_catches_a_refused_timer_goes_on(how):
    result = run_workflow("testapp.out_of_range_timer_caught", how=how)
    assert result["refused"].startswith("ValueError: ")
    assert LIMIT in result["refused"]
    assert result["sum"] == 3
    assert commands_of(EventKind.TIMER_FIRED) == [1]


# -- asyncio.as_completed --------------------------------------------------------------------


def test_as_completed_over_coroutines_fails_the_execution():
    error = failed_with("testapp.as_completed_coroutines", n=3)
    assert error.error_type == "builtins.TypeError"
    assert error.message.startswith("asyncio.as_completed() takes futures or tasks")
    assert commands_of(EventKind.ACTIVITY_SCHEDULED) == []


def test_as_completed_over_tasks_and_futures_replays_every_workflow_task():
    execution_id = start_workflow("testapp.as_completed_futures", n=3)
    runner = InlineRunner(execution_id, cache=StickyCache(size=0))  # no cache: replays only
    execution = async_to_sync(runner.run)()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error
    assert sorted(execution.result) == [0, 0, 2, 2, 4, 4]
    assert runner.cache.misses > 1 and runner.cache.hits == 0


# -- canceled timers -------------------------------------------------------------------------


def test_timer_answered_early_never_fires():
    assert run_workflow("testapp.timers_answered_early") == {"got": "yes", "added": 3}
    assert commands_of(EventKind.TIMER_STARTED) == [2, 4, 5]
    assert commands_of(EventKind.TIMER_FIRED) == [5]  # not the signal's, not wait_for's


# -- BaseException from workflow code --------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "where", "error_type", "message"),
    [
        ("system_exit", "workflow", "builtins.SystemExit", "3"),
        ("keyboard_interrupt", "workflow", "builtins.KeyboardInterrupt", "pressed"),
        ("custom", "workflow", "tests.testapp.runtime_hostile.Boom", "bang"),
        ("system_exit", "task", "builtins.SystemExit", "3"),
        ("keyboard_interrupt", "gather", "builtins.KeyboardInterrupt", "pressed"),
        ("system_exit", "reraised", "builtins.SystemExit", "3"),
    ],
)
def test_base_exception_fails_the_execution(how, where, error_type, message):
    error = failed_with("testapp.raises_base_exception", how=how, where=where)
    assert (error.error_type, error.message) == (error_type, message)
    assert "_raise(how)" in error.remote_traceback


@pytest.mark.parametrize(
    ("how", "error_type", "message"),
    [
        ("system_exit", "builtins.SystemExit", "3"),
        ("keyboard_interrupt", "builtins.KeyboardInterrupt", "pressed"),
    ],
)
def test_base_exception_fails_a_plain_def_workflow(how, error_type, message):
    error = failed_with("testapp.plain_raises_base_exception", how=how)
    assert (error.error_type, error.message) == (error_type, message)


def test_workflow_may_catch_system_exit_of_its_own_task():
    assert run_workflow("testapp.catches_system_exit") == "caught SystemExit(4)"


# -- what cannot be stored -------------------------------------------------------------------


@pytest.mark.parametrize("what", ["object", "set", "nan"])
def test_unstorable_result_fails_with_a_payload_error(what):
    error = failed_with("testapp.returns_unstorable", what=what)
    assert error.error_type == "django_durable.exceptions.PayloadError"
    assert error.message.startswith("The workflow's result ")


@pytest.mark.parametrize(
    ("how", "error_type"),
    [("unprintable", "UnprintableError"), ("unpicklable", "UnpicklableArgsError")],
)
def test_strange_exception_still_fails_the_execution(how, error_type):
    error = failed_with("testapp.raises_strange_error", how=how)
    assert error.error_type == f"tests.testapp.runtime_hostile.{error_type}"
