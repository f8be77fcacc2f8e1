"""The benchmark's activities: they do (almost) nothing, so what is measured is the engine."""

import asyncio

from django_durable import register


@register.activity()
def noop(value):
    """Return `value` unchanged (a sync activity: one process slot while it runs)."""
    return value


@register.activity()
async def io_wait(seconds: float, value):
    """Await `seconds` of simulated I/O, then return `value` (an async activity: many of them
    can wait at once in one activity process)."""
    await asyncio.sleep(seconds)
    return value
