"""The benchmark's workflows, one per shape; each returns what its check expects."""

import asyncio

from django_durable import register


@register.workflow()
async def empty(ctx, i: int):
    """No activity: one workflow task; returns `i` (the start-rate shape drains these)."""
    return i


@register.workflow()
async def one_activity(ctx, i: int):
    """Run `bench.noop` once and return its result (`i`)."""
    return await ctx.run_activity("bench.noop", i)


@register.workflow()
async def ten_activities(ctx, i: int):
    """Run `bench.noop` ten times, one after the other; returns `i`."""
    value = i
    for _ in range(10):
        value = await ctx.run_activity("bench.noop", value)
    return value


@register.workflow()
async def fan_out(ctx, n: int, kind: str, seconds: float):
    """Gather `n` activities at once: `bench.io_wait(seconds, k)` (kind "async") or
    `bench.noop(k)` (kind "sync"); returns the sum of their results, n(n-1)/2."""
    if kind == "async":
        calls = [ctx.run_activity("bench.io_wait", seconds, k) for k in range(n)]
    else:
        calls = [ctx.run_activity("bench.noop", k) for k in range(n)]
    return sum(await asyncio.gather(*calls))


@register.workflow()
async def steps(ctx, n: int):
    """Run `n` `bench.noop` activities in sequence, each fed the previous result; returns n."""
    value = 0
    for _ in range(n):
        value = await ctx.run_activity("bench.noop", value) + 1
    return value


@register.workflow()
async def sleeper(ctx, wake_at: float):
    """Sleep on a durable timer until `wake_at` (seconds since the epoch), then return it.

    Every sleeper of a run gets the same `wake_at`, so they all wake at once."""
    await ctx.sleep(max(0.0, wake_at - ctx.now().timestamp()))
    return wake_at


@register.workflow()
async def wait_for_signal(ctx):
    """Suspend until the signal "go" arrives and return its payload."""
    return await ctx.wait_signal("go")
