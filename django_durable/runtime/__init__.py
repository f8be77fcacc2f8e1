"""The workflow side: context, deterministic loop and replay. Pure Python, no database."""

from .context import WorkflowContext, WorkflowInfo
from .events import Event
from .instance import WorkflowInstance
from .replay import replay, split_activations
from .versioning import DEFAULT_VERSION

__all__ = [
    "DEFAULT_VERSION",
    "Event",
    "WorkflowContext",
    "WorkflowInfo",
    "WorkflowInstance",
    "replay",
    "split_activations",
]
