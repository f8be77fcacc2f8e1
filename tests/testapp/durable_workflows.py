"""Workflows the test suite drives, in both styles."""

import asyncio

from django_durable import ActivityError, RetryPolicy, WorkflowFailed, register

from .durable_activities import add


@register.workflow()
async def add_twice(ctx, a: int, b: int) -> int:
    first = await ctx.run_activity(add, a, b)
    return await ctx.run_activity("testapp.add", first, b)


@register.workflow()
async def fan_out(ctx, n: int) -> list:
    return list(
        await asyncio.gather(*(ctx.run_activity("testapp.async_double", i) for i in range(n)))
    )


@register.workflow()
async def sleepy(ctx, seconds: float) -> dict:
    before = ctx.now()
    await ctx.sleep(seconds)
    await asyncio.sleep(seconds)  # asyncio.sleep is a durable timer inside a workflow
    return {"slept": (ctx.now() - before).total_seconds()}


@register.workflow()
async def catches_failure(ctx) -> str:
    try:
        await ctx.run_activity("testapp.explode", "boom")
    except ActivityError as exc:
        return f"caught {exc.error_type}: {exc.message}"
    return "not reached"


@register.workflow()
def fails(ctx, message: str):
    ctx.run_activity("testapp.explode", message)


@register.workflow()
async def raises_directly(ctx):
    raise KeyError("no such thing")


@register.workflow()
async def returns_non_json(ctx):
    return {1, 2, 3}


@register.workflow()
async def bad_activity_result(ctx):
    return await ctx.run_activity("testapp.not_json")


@register.workflow()
async def collect_signals(ctx, count: int) -> list:
    return [await ctx.wait_signal("item") for _ in range(count)]


@register.workflow()
async def signal_or_timeout(ctx, timeout: float):
    return {"got": await ctx.wait_signal("maybe", timeout=timeout)}


@register.workflow()
async def cancellable(ctx) -> str:
    try:
        await ctx.wait_signal("never")
    except asyncio.CancelledError:
        await ctx.run_activity("testapp.add", 1, 1)  # clean-up work is still allowed
        raise
    return "not reached"


@register.workflow()
async def deterministic_values(ctx) -> dict:
    await ctx.sleep(0)
    return {"now": ctx.now().isoformat(), "random": ctx.random().random(), "uuid": str(ctx.uuid4())}


@register.workflow()
async def identity(ctx) -> dict:
    return await ctx.run_activity("testapp.whoami")


@register.workflow(name="custom.workflow")
async def custom_workflow(ctx) -> str:
    return await ctx.run_activity("custom.named")


@register.workflow()
def onboard_user_short(ctx, user_id: int, wait_seconds: float):
    """The tutorial's onboard_user with its timer shortened and its side effects counted."""
    ctx.run_activity("testapp.record_effect", f"welcome-{user_id}")
    ctx.sleep(wait_seconds)
    ctx.run_activity("testapp.record_effect", f"score-{user_id}")
    return {"ok": True}


@register.workflow()
async def one_effect(ctx, name: str) -> int:
    return await ctx.run_activity("testapp.record_effect", name)


@register.workflow()
async def timer_probe(ctx, seconds: float) -> None:
    await ctx.sleep(seconds)


@register.workflow()
async def long_activity(ctx, name: str, seconds: float) -> str:
    return await ctx.run_activity("testapp.slow_effect", name, seconds)


@register.workflow()
async def many_steps(ctx, steps: int) -> int:
    total = 0
    for i in range(steps):
        total = await ctx.run_activity("testapp.add", total, i)
    return total


@register.workflow()
async def retried(ctx, name: str, failures: int) -> int:
    return await ctx.run_activity("testapp.flaky", name, failures)


@register.workflow()
async def retried_with_policy(ctx, name: str, failures: int, attempts: int):
    try:
        return await ctx.run_activity(
            "testapp.flaky",
            name,
            failures,
            retry_policy=RetryPolicy(initial_interval=0.1, maximum_attempts=attempts),
        )
    except ActivityError as exc:
        return {"type": exc.error_type, "message": exc.message, "tb": exc.remote_traceback}


@register.workflow()
async def declined(ctx) -> str:
    try:
        await ctx.run_activity("testapp.decline")
    except ActivityError as exc:
        return exc.error_type
    return "not reached"


@register.workflow()
async def runaway(ctx, timeout: float) -> dict:
    """A busy-looping activity with a timeout, beside a well-behaved one."""
    slow = asyncio.ensure_future(ctx.run_activity("testapp.slow_effect", "neighbour", 2))
    try:
        await ctx.run_activity(
            "testapp.spin",
            "spinner",
            start_to_close_timeout=timeout,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
    except ActivityError as exc:
        outcome = exc.error_type
    return {"spin": outcome, "neighbour": await slow}


@register.workflow()
async def silent(ctx, heartbeat_timeout: float) -> str:
    try:
        await ctx.run_activity(
            "testapp.beat_then_hang",
            "silent",
            heartbeat_timeout=heartbeat_timeout,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
    except ActivityError as exc:
        return exc.message
    return "not reached"


@register.workflow()
async def resumes(ctx) -> dict:
    return await ctx.run_activity("testapp.resumable")


@register.workflow()
async def parent(ctx, x: int) -> dict:
    child = ctx.start_workflow("testapp.add_twice", a=x, b=1)
    return {"child": str(child.execution_id), "result": await child.result()}


@register.workflow()
def plain_parent(ctx, x: int) -> int:
    return ctx.run_workflow("testapp.add_twice", a=x, b=x)


@register.workflow()
async def parent_of_failure(ctx) -> str:
    try:
        await ctx.run_workflow("testapp.raises_directly")
    except WorkflowFailed as exc:
        return f"{exc.error_type}: {exc.message}"
    return "not reached"


@register.workflow()
async def parent_of_waiter(ctx) -> str:
    child = ctx.start_workflow("testapp.collect_signals", count=1)
    return str(child.execution_id)  # ends at once: the child is canceled


@register.workflow()
async def parent_waiting_on_child(ctx) -> list:
    return await ctx.run_workflow("testapp.collect_signals", count=1)


@register.workflow(timeout=30)
async def slow_with_default_timeout(ctx) -> None:
    await ctx.sleep(3600)


@register.workflow()
async def hangs_in_activity(ctx, name: str) -> str:
    return await ctx.run_activity("testapp.beat_forever", name)


@register.workflow()
async def hangs_silently(ctx, name: str) -> str:
    return await ctx.run_activity("testapp.slow_effect", name, 60)


@register.workflow()
async def transactional_steps(ctx, steps: int, seconds: float) -> list:
    return [
        await ctx.run_activity("testapp.transactional_effect", f"tx-{i}", seconds)
        for i in range(steps)
    ]


@register.workflow()
async def deployed_variant(ctx) -> int:
    """Its code depends on DURABLE_TEST_VARIANT, standing in for a deploy that renamed an
    activity without versioning it."""
    import os

    if os.environ.get("DURABLE_TEST_VARIANT", "old") == "old":
        result = await ctx.run_activity("testapp.add", 1, 2)
    else:
        result = await ctx.run_activity("testapp.async_double", 1)
    await ctx.sleep(2)
    return result


@register.workflow()
async def bad_call_options(ctx) -> None:
    await ctx.run_activity("testapp.add", 1, 1, start_to_close_timeout=0)


@register.workflow()
async def transactional_heartbeat(ctx) -> None:
    await ctx.run_activity("testapp.transactional_heartbeat")


# Workflows and activities of the reliability suites live in their own modules.
from . import chaos, deploy_flows, engine_hostile, runtime_hostile  # noqa: E402, F401
