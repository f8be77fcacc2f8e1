"""Hostile workflow code for the runtime's reliability tests (issue 7): timers out of range,
`asyncio.as_completed` over coroutines, timers canceled early, `BaseException`s, results
and errors that cannot be stored. Each must end in a clear outcome, never a broken engine."""

import asyncio

from django_durable import activity, register, send_signal

# Timer calls a workflow may make with a bad duration, by name (inputs must be JSON).
BAD_TIMERS = {
    "sleep_inf": lambda ctx: ctx.sleep(float("inf")),
    "sleep_nan": lambda ctx: ctx.sleep(float("nan")),
    "sleep_huge": lambda ctx: ctx.sleep(1e12),
    "sleep_str": lambda ctx: ctx.sleep("5"),
    "signal_huge": lambda ctx: ctx.wait_signal("x", timeout=1e12),
    "asyncio_inf": lambda ctx: asyncio.sleep(float("inf")),
    "wait_for_inf": lambda ctx: asyncio.wait_for(ctx.wait_signal("x"), timeout=float("inf")),
}


@register.workflow()
async def out_of_range_timer(ctx, how: str) -> None:
    await BAD_TIMERS[how](ctx)


@register.workflow()
async def out_of_range_timer_caught(ctx, how: str) -> dict:
    try:
        await BAD_TIMERS[how](ctx)
    except (TypeError, ValueError) as exc:
        refused = f"{type(exc).__name__}: {exc}"
    await ctx.sleep(60)  # the workflow goes on, with durable timers that work
    return {"refused": refused, "sum": await ctx.run_activity("testapp.add", 1, 2)}


async def _doubled(ctx, n: int) -> int:
    return await ctx.run_activity("testapp.async_double", n)


@register.workflow()
async def as_completed_coroutines(ctx, n: int) -> list:
    return [await f for f in asyncio.as_completed([_doubled(ctx, i) for i in range(n)])]


@register.workflow()
async def as_completed_futures(ctx, n: int) -> list:
    """Tasks of coroutines and bare activity futures, mixed: both keep their order."""
    pending = [asyncio.ensure_future(_doubled(ctx, i)) for i in range(n)]
    pending += [ctx.run_activity("testapp.add", i, i) for i in range(n)]
    return [await f for f in asyncio.as_completed(pending)]


@register.activity()
def signal_own_workflow(name: str, payload) -> None:
    """Signals the workflow that scheduled it: a signal that comes before a timer fires."""
    send_signal(activity.info().execution_id, name, payload)


@register.workflow()
async def timers_answered_early(ctx) -> dict:
    """Two timers that never fire: a signal, then an activity, each come first."""
    sender = asyncio.ensure_future(ctx.run_activity(signal_own_workflow, "early", "yes"))
    got = await ctx.wait_signal("early", timeout=600)  # timer #2
    await sender
    added = await asyncio.wait_for(ctx.run_activity("testapp.add", 1, 2), timeout=600)  # #4
    await ctx.sleep(3600)  # timer #5, the only one that fires
    return {"got": got, "added": added}


class Boom(BaseException):
    """A user-defined `BaseException`, outside the `Exception` hierarchy."""


def _raise(how: str):
    if how == "system_exit":
        raise SystemExit(3)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt("pressed")
    if how == "custom":
        raise Boom("bang")
    raise ValueError(how)


@register.workflow()
async def raises_base_exception(ctx, how: str, where: str) -> str:
    """Raises in the workflow itself, in a task it spawned, or in a gathered coroutine."""
    await ctx.sleep(1)

    async def spawned():
        _raise(how)

    if where == "workflow":
        _raise(how)
    elif where == "task":
        await asyncio.create_task(spawned())
    elif where == "gather":
        await asyncio.gather(spawned(), ctx.run_activity("testapp.add", 1, 1))
    elif where == "reraised":
        try:
            _raise(how)
        except BaseException:
            await ctx.run_activity("testapp.add", 1, 1)  # clean-up, then on its way
            raise
    return "not reached"


@register.workflow()
def plain_raises_base_exception(ctx, how: str) -> str:
    ctx.sleep(1)
    _raise(how)


@register.workflow()
async def catches_system_exit(ctx) -> str:
    async def spawned():
        raise SystemExit(4)

    try:
        await asyncio.create_task(spawned())
    except SystemExit as exc:
        return f"caught SystemExit({exc.code})"
    return "not reached"


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class UnpicklableArgsError(Exception):
    """Its argument is a lambda: neither picklable nor JSON."""


@register.workflow()
async def raises_strange_error(ctx, how: str) -> None:
    if how == "unprintable":
        raise UnprintableError()
    raise UnpicklableArgsError(lambda: None)


RESULTS = {"object": object, "set": lambda: {1, 2}, "nan": lambda: float("nan")}


@register.workflow()
async def returns_unstorable(ctx, what: str):
    return RESULTS[what]()
