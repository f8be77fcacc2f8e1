"""The workflow side: context, deterministic loop and replay. Pure Python, no database."""

from .context import WorkflowContext, WorkflowInfo
from .events import Event
from .instance import WorkflowInstance
from .replay import replay, split_activations

__all__ = [
    "Event",
    "WorkflowContext",
    "WorkflowInfo",
    "WorkflowInstance",
    "replay",
    "split_activations",
]
