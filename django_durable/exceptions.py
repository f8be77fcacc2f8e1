"""The exceptions django-durable raises to its users, all under `DurableError`."""


class DurableError(Exception):
    """Base class of every error django-durable raises on purpose."""


class WorkflowNotFound(DurableError, LookupError):
    """No execution (or no registered workflow) has the given id or name."""


class ExecutionFinished(DurableError):
    """The execution has already ended, so it takes no more signals or cancellations."""


class WorkflowFailed(DurableError):
    """The workflow raised; `error_type`, `message` and `remote_traceback` describe it."""

    def __init__(self, execution_id, error: dict):
        self.execution_id = execution_id
        self.error_type = error.get("type", "")
        self.message = error.get("message", "")
        self.remote_traceback = error.get("traceback", "")
        super().__init__(
            f"Workflow execution {execution_id} failed: {self.error_type}: {self.message}"
        )


class WorkflowCanceled(DurableError):
    """The execution was canceled before it completed."""


class WorkflowTimedOut(DurableError):
    """The execution, or the wait for it, ran out of time."""


class NonDeterminismError(DurableError):
    """Replaying the workflow issued other commands than its history recorded.

    Where one command was compared with another, `expected` describes what history
    recorded and `found` what the code issued instead ("activity scheduled 'shop.charge'
    (command #2)", or "no further command"); both are None otherwise.
    """

    def __init__(self, message: str, *, expected: str | None = None, found: str | None = None):
        super().__init__(message)
        self.expected = expected
        self.found = found


class WorkflowBlocked(DurableError):
    """`run_workflow` cannot continue: the workflow waits for something only others can send."""


class ActivityError(DurableError):
    """An activity failed for good; raised inside the workflow that awaited it.

    `error_type`, `message` and `remote_traceback` describe the activity's own exception.
    """

    def __init__(self, activity_name: str, error: dict):
        self.activity_name = activity_name
        self.error_type = error.get("type", "")
        self.message = error.get("message", "")
        self.remote_traceback = error.get("traceback", "")
        super().__init__(f"Activity {activity_name!r} failed: {self.error_type}: {self.message}")


class InvalidArgument(DurableError, TypeError, ValueError):
    """A call got an argument it cannot use (wrong type, out of range, unknown option, or
    input that does not fit the workflow's parameters); nothing was written."""


class PayloadError(DurableError, TypeError):
    """A value that must be stored is not JSON-serializable, or is too large."""


class ActivityNotFound(DurableError, LookupError):
    """No activity is registered under the given name."""


class WaitTimeout(DurableError, TimeoutError):
    """`wait_workflow` gave up waiting; the execution itself goes on."""


class ActivityTimeoutError(DurableError, TimeoutError):
    """An activity attempt ran past one of its timeouts and its process was stopped."""


class ActivityCanceled(DurableError):
    """Raised by `activity.heartbeat()` when the attempt should stop: its workflow was
    canceled, or the attempt lost its lease. Let it propagate."""


class ActivityProcessDied(DurableError):
    """The process running an activity attempt died (killed, out of memory, crashed)."""


class ExecutionNotRetryable(DurableError):
    """`retry_workflow` refused: the execution is running, completed, a child of another, or
    already retried, or its workflow_id is held by a live execution. The message says what to
    do instead; nothing was written."""
