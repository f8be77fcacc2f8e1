"""Hostile user code for the worker's reliability tests: activities that kill their process,
workflows that never yield. Each one must cost only its own work (G11, G12)."""

import asyncio
import os
import signal
import sys
import time

from django_durable import ActivityError, RetryPolicy, activity, register

ONCE = RetryPolicy(maximum_attempts=1)


class Unpicklable(Exception):
    """An exception that cannot cross a process boundary by pickling."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.handle = lambda: None

    def __reduce__(self):
        raise TypeError("cannot pickle Unpicklable")


@register.activity(retry_policy=ONCE)
def misbehave(how: str):
    """Ends its attempt in the way `how` names."""
    if how == "os_exit":
        os._exit(1)
    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "sys_exit":
        sys.exit(3)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt
    if how == "base_exception":
        raise GeneratorExit("not really")
    if how == "unpicklable":
        raise Unpicklable("holds a lambda")
    if how == "not_json":
        return {"when": object()}
    if how == "print_megabytes":
        for _ in range(4):
            print("x" * (1024 * 1024), flush=True)
        return "printed"
    if how == "spin":
        while True:
            pass
    raise ValueError(f"unknown way to misbehave: {how}")


@register.activity(retry_policy=ONCE)
def counted_sleep(name: str, seconds: float) -> str:
    """Records each start and each finish, so a test sees whether it ran twice."""
    from .models import Effect

    key = activity.info().idempotency_key
    Effect.objects.create(name=f"{name}:start", key=key)
    time.sleep(seconds)
    Effect.objects.create(name=f"{name}:end", key=key)
    return name


@register.workflow()
async def misbehaving_neighbourhood(
    ctx, how: str, neighbours: int, seconds: float, timeout: float | None = None
) -> dict:
    """One misbehaving activity gathered with `neighbours` well-behaved ones."""

    async def outcome(call) -> str:
        try:
            return await call
        except ActivityError as exc:
            return f"{exc.error_type}: {exc.message}"

    calls = [ctx.run_activity(misbehave, how, start_to_close_timeout=timeout)]
    calls += [ctx.run_activity(counted_sleep, f"neighbour{i}", seconds) for i in range(neighbours)]
    results = await asyncio.gather(*(outcome(call) for call in calls))
    return {"misbehaving": results[0], "neighbours": results[1:]}


@register.workflow()
async def workflow_misbehaves(ctx, how: str) -> str:
    """Workflow code that blocks or ends its thread instead of awaiting."""
    await ctx.sleep(0.01)
    if how == "spin":
        while True:
            pass
    if how == "time_sleep":
        time.sleep(5)  # noqa: ASYNC251 - the blocking call is the point
    if how == "system_exit":
        raise SystemExit(3)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt
    return "survived"


@register.workflow()
async def lapsing_activity(ctx, seconds: float) -> str:
    return await ctx.run_activity(counted_sleep, "lapsing", seconds)
