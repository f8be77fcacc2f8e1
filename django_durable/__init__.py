"""django-durable: durable workflow execution for Django, on the project's own database.

The public names are exported here, and only here; the API's are loaded on first use so
that importing this package before Django is set up stays cheap and safe.
"""

from importlib import import_module

from .exceptions import (
    ActivityCanceled,
    ActivityError,
    ActivityNotFound,
    ActivityProcessDied,
    ActivityTimeoutError,
    DurableError,
    ExecutionFinished,
    ExecutionNotRetryable,
    InvalidArgument,
    NonDeterminismError,
    PayloadError,
    WaitTimeout,
    WorkflowBlocked,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
    WorkflowTimedOut,
)

_LAZY = {
    "register": "django_durable.registry",
    "RetryPolicy": "django_durable.registry",
    "start_workflow": "django_durable.api",
    "start_workflows": "django_durable.api",
    "wait_workflow": "django_durable.api",
    "run_workflow": "django_durable.api",
    "send_signal": "django_durable.api",
    "cancel_workflow": "django_durable.api",
    "retry_workflow": "django_durable.api",
    "WorkflowContext": "django_durable.runtime.context",
    "activity": "django_durable.activity",
}

__all__ = [
    "ActivityCanceled",
    "ActivityError",
    "ActivityNotFound",
    "ActivityProcessDied",
    "ActivityTimeoutError",
    "DurableError",
    "ExecutionFinished",
    "ExecutionNotRetryable",
    "InvalidArgument",
    "NonDeterminismError",
    "PayloadError",
    "RetryPolicy",
    "WaitTimeout",
    "WorkflowBlocked",
    "WorkflowCanceled",
    "WorkflowContext",
    "WorkflowFailed",
    "WorkflowNotFound",
    "WorkflowTimedOut",
    "activity",
    "cancel_workflow",
    "register",
    "retry_workflow",
    "run_workflow",
    "send_signal",
    "start_workflow",
    "start_workflows",
    "wait_workflow",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'django_durable' has no attribute {name!r}")
    module = import_module(_LAZY[name])
    value = module if module.__name__.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
