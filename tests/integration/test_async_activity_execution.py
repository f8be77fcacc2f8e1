"""`execute_activity_async`: many attempts as tasks of one loop, each with its own
`activity.info()` and heartbeat; and the setting that bounds them per process."""

import asyncio
import dataclasses

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import override_settings

from django_durable import start_workflow, store
from django_durable.checks import check_durable_settings
from django_durable.engine.activities import (
    execute_activity_async,
    release_helper_connections,
)
from django_durable.engine.pool import ActivityPool
from django_durable.engine.workflow_task import run_workflow_task
from django_durable.models import ActivityTask
from django_durable.registry import WorkflowDefinition, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def claims(monkeypatch):
    """Claims of real activity tasks: `testapp.add_twice` made to schedule `name(*args)`."""

    def make(name: str, *args, count: int = 1) -> list:
        async def schedules(ctx, a, b):
            return await asyncio.gather(*(ctx.run_activity(name, *args) for _ in range(count)))

        monkeypatch.setitem(
            register.workflows,
            "testapp.add_twice",
            WorkflowDefinition("testapp.add_twice", schedules, True),
        )
        start_workflow("testapp.add_twice", a=1, b=1)
        [task] = store.claim_workflow_tasks("w", 1)
        async_to_sync(run_workflow_task)(task)
        return store.claim_activity_tasks("w", count)

    yield make
    release_helper_connections()


async def test_concurrent_attempts_each_see_their_own_info(claims):
    made = await sync_to_async(claims)("testapp.async_whoami", 0.05, count=20)
    outcomes = await asyncio.gather(*(execute_activity_async(claim) for claim in made))
    assert [outcome["result"] for outcome in outcomes] == [
        {"before": claim.idempotency_key, "after": claim.idempotency_key} for claim in made
    ]


async def test_a_cancelled_attempt_ends_with_its_error(claims):
    [claim] = await sync_to_async(claims)("testapp.async_nap", 30)
    task = asyncio.create_task(execute_activity_async(claim))
    await asyncio.sleep(0.1)
    task.cancel()
    outcome = await task
    assert outcome["error"]["type"] == "asyncio.exceptions.CancelledError"


async def test_a_heartbeat_from_async_code_is_recorded(claims):
    [claim] = await sync_to_async(claims)("testapp.async_beats", 3)
    assert await execute_activity_async(claim) == {"result": {"steps": 3}}
    task = await ActivityTask.objects.aget(pk=claim.task_id)
    assert task.heartbeat_details == {"step": 0}  # throttled: the first one was written
    assert task.heartbeat_at is not None


async def test_a_heartbeat_tells_an_async_attempt_that_lost_its_lease(claims):
    [claim] = await sync_to_async(claims)("testapp.async_beats", 1)
    stale = dataclasses.replace(claim, owner="another-worker")
    outcome = await execute_activity_async(stale)
    assert outcome["error"]["type"] == "django_durable.exceptions.ActivityCanceled"


async def test_a_def_activity_given_to_the_async_path_runs_off_the_loop():
    from tests.acceptance.test_async_activities import claim

    outcome = await execute_activity_async(claim("add", 2, 3))
    assert outcome == {"result": 5}


@pytest.mark.parametrize("value", [0, -1, 2.5, "10", True, None])
def test_async_activities_per_process_must_be_a_whole_number_of_at_least_one(value):
    with override_settings(DURABLE={"ASYNC_ACTIVITIES_PER_PROCESS": value}):
        assert [error.id for error in check_durable_settings()] == ["django_durable.E007"]


def test_the_pool_takes_async_activities_per_process_from_the_settings():
    with override_settings(DURABLE={"ASYNC_ACTIVITIES_PER_PROCESS": 7}):
        assert ActivityPool(1).async_per_process == 7
    assert ActivityPool(1).async_per_process == 500
