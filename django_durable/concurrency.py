"""Where code runs: whether an event loop is running in this thread (no imports of ours)."""

import asyncio


def in_event_loop() -> bool:
    """True inside a running event loop, where sync database access is not allowed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
