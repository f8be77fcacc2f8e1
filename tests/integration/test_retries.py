"""Retries: counted, spaced by the back-off, stopped by policy; the final error reaches the
workflow with the original type, message and traceback."""

import time

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from django_durable import RetryPolicy, run_workflow, start_workflow
from django_durable.constants import ActivityStatus, EventKind
from django_durable.engine.inline import InlineRunner
from django_durable.models import ActivityTask, HistoryEvent
from tests.testapp.durable_activities import CALLS
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_attempts_are_retried_until_success():
    assert run_workflow("testapp.retried", name="r", failures=2) == 3
    task = ActivityTask.objects.get()
    assert (task.status, task.attempt) == (ActivityStatus.COMPLETED, 3)
    assert task.error["message"] == "attempt 2 failed"  # the last failure is kept
    assert Effect.objects.filter(name="r").count() == 3
    # Retries are not history: the workflow saw one outcome.
    assert HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_COMPLETED).count() == 1
    assert not HistoryEvent.objects.filter(kind=EventKind.ACTIVITY_FAILED).exists()


def test_final_failure_reaches_the_workflow_with_the_original_error():
    result = run_workflow("testapp.retried_with_policy", name="f", failures=9, attempts=3)
    assert result["type"] == "builtins.ConnectionError"
    assert result["message"] == "attempt 3 failed"
    assert 'raise ConnectionError(f"attempt {attempt} failed")' in result["tb"]
    task = ActivityTask.objects.get()
    assert (task.status, task.attempt) == (ActivityStatus.FAILED, 3)


def test_non_retryable_error_fails_at_once():
    assert run_workflow("testapp.declined") == "tests.testapp.durable_activities.CardDeclined"
    assert CALLS["decline"] == 1


@override_settings(DURABLE={"RETRY_POLICY": {"maximum_attempts": 2, "initial_interval": 0}})
def test_project_default_policy_applies_to_activities_without_one():
    with pytest.raises(Exception, match="boom"):
        run_workflow("testapp.fails", message="boom")
    assert ActivityTask.objects.get().attempt == 2


def test_backoff_is_exponential_and_capped():
    policy = RetryPolicy(initial_interval=1, backoff_coefficient=3, maximum_interval=20)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [1, 3, 9, 20]
    assert policy.retries("builtins.ValueError", 2) and not policy.retries("x.Y", 3)


async def test_retry_waits_are_honoured_on_the_inline_virtual_clock():
    execution_id = await start_workflow("testapp.retried", name="w", failures=2)
    runner = InlineRunner(execution_id)
    started = time.monotonic()
    await runner.run()
    elapsed = time.monotonic() - started
    # Back-offs of 0.5 s then 1.0 s were waited out (fast-forwarded), not skipped.
    assert runner.skipped.total_seconds() + elapsed >= 1.5


def test_heartbeat_details_carry_over_to_the_retry():
    assert run_workflow("testapp.resumes") == {"resumed_from": {"done": 7}}


async def test_a_new_attempt_keeps_heartbeat_details_but_not_the_heartbeat_time():
    from datetime import timedelta

    from django.utils import timezone

    from django_durable import store
    from django_durable.engine.workflow_task import run_workflow_task

    await start_workflow("testapp.add_twice", a=1, b=1)
    [claim] = await store.aclaim_workflow_tasks("w", 1)
    await run_workflow_task(claim)
    now = timezone.now()
    [first] = await store.aclaim_activity_tasks("w", 1, now=now)
    assert await sync_to_async(store.record_heartbeat)(first, {"at": 3}, now=now)
    [second] = await store.aclaim_activity_tasks("w2", 1, now=now + timedelta(seconds=10))
    assert second.heartbeat_details == {"at": 3}
    task = await ActivityTask.objects.aget()
    assert task.heartbeat_at is None  # a heartbeat timeout counts from the new start


def test_per_call_options_are_checked_in_the_workflow():
    with pytest.raises(Exception, match="start_to_close_timeout must be a positive number"):
        run_workflow("testapp.bad_call_options")


@override_settings(DURABLE={"RETRY_POLICY": {"maximum_attempt": 3}})
def test_a_bad_project_retry_policy_is_a_system_check_error():
    from django_durable.checks import check_durable_settings

    assert [error.id for error in check_durable_settings()] == ["django_durable.E006"]


def test_a_transactional_activity_may_not_heartbeat():
    with pytest.raises(Exception, match="A transactional activity cannot heartbeat"):
        run_workflow("testapp.transactional_heartbeat")
    assert not Effect.objects.exists()
