"""The runtime's view of one history event, independent of how the store keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One history event.

    Attributes:
        kind: an `EventKind` value.
        command_seq: the sequence number of the command the event belongs to, if any.
        name: the activity or signal name, if any.
        data: the kind's JSON payload.
    """

    kind: str
    command_seq: int | None = None
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        what = self.kind.replace("_", " ")
        if self.name:
            what += f" {self.name!r}"
        if self.command_seq is not None:
            what += f" (command #{self.command_seq})"
        return what
