"""Activities the test suite drives; side effects are counted in `CALLS`."""

import asyncio
import collections

from django_durable import RetryPolicy, activity, register

from . import async_activities  # noqa: F401 (registers its activities)

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


class CardDeclined(Exception):
    pass


@register.activity(retry_policy=RetryPolicy(initial_interval=0.5, maximum_attempts=5))
def flaky(name: str, failures: int) -> int:
    """Fails its first `failures` attempts, recording when each attempt started."""
    from .models import Effect

    attempt = activity.info().attempt
    Effect.objects.create(name=name, key=str(attempt))
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@register.activity(retry_policy=RetryPolicy(non_retryable_errors=["CardDeclined"]))
def decline() -> None:
    CALLS["decline"] += 1
    raise CardDeclined("insufficient funds")


@register.activity()
def spin(name: str) -> None:
    """A runaway: records its pid, then burns a CPU forever."""
    import os

    from .models import Effect

    Effect.objects.create(name=name, key=str(os.getpid()))
    while True:
        pass


@register.activity()
def beat_then_hang(name: str) -> None:
    import time

    from .models import Effect

    activity.heartbeat({"step": 1})
    Effect.objects.create(name=name, key=activity.info().idempotency_key)
    time.sleep(60)


@register.activity(retry_policy=RetryPolicy(initial_interval=0.1, maximum_attempts=2))
def resumable() -> dict:
    """Reports progress, fails once, and resumes from the progress on its retry."""
    info = activity.info()
    if info.attempt == 1:
        activity.heartbeat({"done": 7})
        raise RuntimeError("crashed after step 7")
    return {"resumed_from": info.heartbeat_details}


@register.activity()
def beat_forever(name: str) -> None:
    """Heartbeats until told to stop; records whether it was told."""
    import time

    from django_durable import ActivityCanceled

    from .models import Effect

    try:
        while True:
            activity.heartbeat()
            time.sleep(0.1)
    except ActivityCanceled:
        Effect.objects.create(name=name, key="told to stop")
        raise


@register.activity(transactional=True)
def transactional_effect(name: str, seconds: float) -> int:
    """Writes its effect, then lingers inside the transaction so kills land mid-way.

    Outside the transaction it touches a file per attempt, so a test can tell the body runs.
    """
    import os
    import time
    from pathlib import Path

    from .models import Effect

    if markers := os.environ.get("DURABLE_TEST_MARKERS"):
        Path(markers, activity.info().idempotency_key.replace(":", "_")).touch()
    Effect.objects.create(name=name, key=activity.info().idempotency_key)
    time.sleep(seconds)
    return Effect.objects.filter(name=name).count()


@register.activity(transactional=True, retry_policy=RetryPolicy(maximum_attempts=1))
def transactional_heartbeat() -> None:
    from .models import Effect

    Effect.objects.create(name="rolled back", key="")
    activity.heartbeat()
