"""`async def` activities that report when, where and beside how many others they ran, for
the tests of activity processes running many async attempts at once."""

import asyncio
import os
import time

from django_durable import RetryPolicy, activity, register

ONCE = RetryPolicy(maximum_attempts=1)

# Async attempts running now in this process; a `def` attempt reports it to show that it
# never shares its process with them.
IN_FLIGHT = {"async": 0}


def _report(started: float, beside: int) -> dict:
    return {
        "pid": os.getpid(),
        "start": started,
        "end": time.monotonic(),  # CLOCK_MONOTONIC: comparable between processes of a host
        "beside": beside,
        "key": activity.info().idempotency_key,
    }


@register.activity(retry_policy=ONCE)
async def async_nap(seconds: float) -> dict:
    """Sleeps without blocking its process's loop."""
    started = time.monotonic()
    IN_FLIGHT["async"] += 1
    try:
        beside = IN_FLIGHT["async"] - 1
        await asyncio.sleep(seconds)
        return _report(started, beside)
    finally:
        IN_FLIGHT["async"] -= 1


@register.activity(retry_policy=ONCE)
def sync_nap(seconds: float) -> dict:
    """Sleeps blocking; `beside` is the async attempts its process ran meanwhile."""
    started = time.monotonic()
    beside = IN_FLIGHT["async"]
    time.sleep(seconds)
    return _report(started, max(beside, IN_FLIGHT["async"]))


@register.activity(retry_policy=ONCE)
async def async_blocks(seconds: float) -> str:
    """Blocks its process's event loop (`time.sleep` inside `async def`): a cancel cannot
    reach it."""
    time.sleep(seconds)  # noqa: ASYNC251 (the point of it)
    return "woke"


@register.activity(retry_policy=ONCE)
async def async_whoami(seconds: float) -> dict:
    """`activity.info()` before and after others ran on the same loop."""
    before = activity.info().idempotency_key
    await asyncio.sleep(seconds)
    return {"before": before, "after": activity.info().idempotency_key}


@register.activity(retry_policy=ONCE)
async def async_beats(steps: int) -> dict:
    """Heartbeats from inside async code (a sync call, made on the loop)."""
    for step in range(steps):
        activity.heartbeat({"step": step})
        await asyncio.sleep(0)
    return {"steps": steps}


@register.activity(retry_policy=ONCE)
async def async_exits(after: float) -> None:
    """Ends its whole process (as a crash in a C extension would), taking its neighbours."""
    await asyncio.sleep(after)
    os._exit(3)
