"""The sticky cache: suspended workflow instances kept in memory between workflow tasks.

Resuming a cached instance with new outcomes costs O(new events); without it every
workflow task replays the whole history. A bounded LRU: eviction only costs a replay.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

from ..runtime import WorkflowInstance


@dataclass
class CachedInstance:
    instance: WorkflowInstance
    history_length: int
    # The lease epoch of the workflow task that recorded it. History is appended only
    # under a lease and every lease bumps the epoch, so a claim at `epoch + 1` proves that
    # nobody else ran a workflow task since: the instance is current without a query.
    epoch: int
    # The trace context its WORKFLOW_STARTED event carries (parent of its workflow-task
    # spans), kept so that a task resumed from here needs no history to find it.
    trace: dict[str, str] | None = None


class StickyCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[uuid.UUID, CachedInstance] = OrderedDict()
        self.hits = 0  # workflow tasks that resumed a cached instance
        self.misses = 0  # workflow tasks that had to replay

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, execution_id: uuid.UUID) -> bool:
        return execution_id in self._entries

    def epochs(self) -> dict[uuid.UUID, int]:
        """The epoch each held instance recorded at (see `CachedInstance.epoch`)."""
        return {pk: entry.epoch for pk, entry in self._entries.items()}

    def take(self, execution_id: uuid.UUID) -> CachedInstance | None:
        """Remove and return the entry: whoever takes it puts it back only if it recorded."""
        return self._entries.pop(execution_id, None)

    def clear(self) -> None:
        """Forget every instance (they may belong to a workflow thread that was abandoned)."""
        self._entries.clear()

    def put(
        self,
        execution_id: uuid.UUID,
        instance: WorkflowInstance,
        history_length: int,
        epoch: int,
        trace: dict[str, str] | None = None,
    ) -> None:
        if self.size <= 0 or instance.done:
            return
        self._entries[execution_id] = CachedInstance(instance, history_length, epoch, trace)
        self._entries.move_to_end(execution_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
