"""The async twins of store operations, and where they run.

By default a twin runs its operation through `sync_to_async` in Django's one shared
thread, like the async ORM: in tests and scripts it then shares the caller's connection
and transaction. A worker installs a small thread pool instead (`use_database_threads`),
so that several short transactions are in flight at once, each thread with its own
connection, and the single ORM thread is no longer its bottleneck.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections

from .db import alias

_executor: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "durable_database_threads", default=None
)


def use_database_threads(executor: ThreadPoolExecutor) -> None:
    """Run the twins awaited in this context (and the tasks it starts) on `executor`."""
    _executor.set(executor)


def _on_own_connection(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        # A broken connection must not stay in this long-lived thread: reconnect next time.
        connections[alias()].close_if_unusable_or_obsolete()
        raise


def async_twin(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    in_orm_thread = sync_to_async(fn)

    @functools.wraps(fn)
    async def twin(*args: Any, **kwargs: Any) -> Any:
        executor = _executor.get()
        if executor is None:
            return await in_orm_thread(*args, **kwargs)
        call = functools.partial(_on_own_connection, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    return twin
