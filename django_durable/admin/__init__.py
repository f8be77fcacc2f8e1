"""The operator's console in Django's admin: executions with their timeline, activity
tasks, workers and history, and the actions an operator on call needs (start, signal,
cancel, retry or resume), each behind its own permission and written through the API."""

from .executions import WorkflowExecutionAdmin
from .tables import ActivityTaskAdmin, HistoryEventAdmin, PendingSignalAdmin, WorkerAdmin

__all__ = [
    "ActivityTaskAdmin",
    "HistoryEventAdmin",
    "PendingSignalAdmin",
    "WorkerAdmin",
    "WorkflowExecutionAdmin",
]
