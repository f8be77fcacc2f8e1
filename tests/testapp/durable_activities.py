"""Activities the test suite drives; side effects are counted in `CALLS`."""

import asyncio
import collections

from django_durable import activity, register

CALLS: collections.Counter = collections.Counter()


@register.activity()
def add(a: int, b: int) -> int:
    CALLS["add"] += 1
    return a + b


@register.activity()
async def async_double(x: int) -> int:
    CALLS["async_double"] += 1
    await asyncio.sleep(0)
    return 2 * x


@register.activity()
def explode(message: str):
    CALLS["explode"] += 1
    raise ValueError(message)


@register.activity()
def not_json():
    return {"when": object()}


@register.activity()
def whoami() -> dict:
    info = activity.info()
    return {"key": info.idempotency_key, "attempt": info.attempt, "seq": info.command_seq}


@register.activity(name="custom.named")
def custom_named() -> str:
    return "custom"


@register.activity()
def record_effect(name: str) -> int:
    from .models import Effect

    Effect.objects.create(name=name, key=activity.info().idempotency_key)
    return Effect.objects.filter(name=name).count()


@register.activity()
def slow_effect(name: str, seconds: float) -> str:
    import time

    from .models import Effect

    time.sleep(seconds)
    Effect.objects.create(name=name, key=activity.info().idempotency_key)
    return name
