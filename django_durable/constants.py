"""Names shared by every layer: history event kinds and row statuses (no imports)."""


class EventKind:
    """Kinds of history events. Commands are recorded by the workflow, inputs delivered to it."""

    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_TASK_STARTED = "workflow_task_started"
    # Commands issued by workflow code, checked on replay.
    ACTIVITY_SCHEDULED = "activity_scheduled"
    TIMER_STARTED = "timer_started"
    MARKER_RECORDED = "marker_recorded"  # ctx.patched() / ctx.get_version(): which code ran
    CHILD_WORKFLOW_STARTED = "child_workflow_started"
    # Inputs delivered to workflow code.
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"
    TIMER_FIRED = "timer_fired"
    SIGNAL_RECEIVED = "signal_received"
    CANCEL_REQUESTED = "cancel_requested"
    CHILD_WORKFLOW_ENDED = "child_workflow_ended"
    # Terminal events.
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELED = "workflow_canceled"
    WORKFLOW_TIMED_OUT = "workflow_timed_out"

    COMMANDS = frozenset(
        {ACTIVITY_SCHEDULED, TIMER_STARTED, MARKER_RECORDED, CHILD_WORKFLOW_STARTED}
    )
    TERMINAL = frozenset(
        {WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELED, WORKFLOW_TIMED_OUT}
    )
    INPUTS = frozenset(
        {
            ACTIVITY_COMPLETED,
            ACTIVITY_FAILED,
            TIMER_FIRED,
            SIGNAL_RECEIVED,
            CANCEL_REQUESTED,
            CHILD_WORKFLOW_ENDED,
        }
    )


class ExecutionStatus:
    RUNNING = "running"
    BLOCKED = "blocked"  # parked on a non-determinism error until compatible code is deployed
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"

    CHOICES = [
        (RUNNING, "Running"),
        (BLOCKED, "Blocked"),
        (COMPLETED, "Completed"),
        (FAILED, "Failed"),
        (CANCELED, "Canceled"),
        (TIMED_OUT, "Timed out"),
    ]
    TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, TIMED_OUT})


class ActivityStatus:
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"

    CHOICES = [
        (QUEUED, "Queued"),
        (RUNNING, "Running"),
        (COMPLETED, "Completed"),
        (FAILED, "Failed"),
        (TIMED_OUT, "Timed out"),
        (CANCELED, "Canceled"),
    ]
    TERMINAL = frozenset({COMPLETED, FAILED, TIMED_OUT, CANCELED})
