"""The engine's tables: executions, their append-only history, activity tasks and signals."""

import uuid

from django.db import models

from .constants import ActivityStatus, EventKind, ExecutionStatus

__all__ = ["ActivityTask", "HistoryEvent", "PendingSignal", "Worker", "WorkflowExecution"]


class WorkflowExecution(models.Model):
    """One run of a workflow. The `wake_at`/lease/epoch columns schedule its workflow tasks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow_name = models.CharField(max_length=200, db_index=True)
    workflow_id = models.CharField(  # noqa: DJ001  NULL, unlike "", is never a duplicate
        max_length=200,
        null=True,
        blank=True,
        db_index=True,
        help_text="Optional id given by the caller; at most one live execution has it.",
    )
    input = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.CHOICES, default=ExecutionStatus.RUNNING
    )
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(
        null=True, blank=True, help_text="Type, message and traceback of what ended or parked it."
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_command_seq = models.PositiveIntegerField(null=True, blank=True)
    # Set once a child's outcome is copied into its parent's history.
    delivered_to_parent = models.BooleanField(default=False)
    timeout_at = models.DateTimeField(
        null=True, blank=True, help_text="The execution times out if it has not ended by then."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Scheduling: a workflow task is due when wake_at <= now; NULL means it waits for input.
    wake_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every input (activity done, signal, cancel) so a task can tell it missed one.
    inbox_version = models.PositiveBigIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    cancel_reason = models.TextField(blank=True, default="")
    # Lease with fencing: a claim bumps epoch; writes are accepted only for the current epoch.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    epoch = models.PositiveBigIntegerField(default=0)
    # What the workflow waits for, as its last workflow task left it: a list of
    # {"kind": "activity" | "child" | "signal" | "timer", "seq", "name", "until"}; NULL until
    # a task ran (or when older code recorded it). For operators only; the engine never reads it.
    waiting = models.JSONField(null=True, blank=True, editable=False)
    retried_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="The ended execution this one retries, with the same input.",
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("cancel_execution", "Can cancel a workflow execution"),
            ("signal_execution", "Can send a signal to a workflow execution"),
            ("start_execution", "Can start a workflow execution"),
            ("retry_execution", "Can retry or resume a workflow execution"),
        ]
        indexes = [
            models.Index(
                fields=["wake_at"],
                name="durable_exec_due_idx",
                condition=models.Q(status=ExecutionStatus.RUNNING, wake_at__isnull=False),
            ),
            models.Index(fields=["status", "-created_at"], name="durable_exec_status_idx"),
            # The admin lists newest first, its ties broken by the primary key.
            models.Index(fields=["-created_at", "-id"], name="durable_exec_created_idx"),
            models.Index(
                fields=["parent"],
                name="durable_exec_undelivered_idx",
                condition=models.Q(parent__isnull=False, delivered_to_parent=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow_id"],
                name="durable_exec_one_live_workflow_id",
                condition=models.Q(status__in=[ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in ExecutionStatus.TERMINAL


class HistoryEvent(models.Model):
    """One entry of an execution's append-only log, numbered from 1 by `sequence`."""

    KIND_CHOICES = [
        (kind, kind.replace("_", " "))
        for kind in sorted(
            value
            for key, value in vars(EventKind).items()
            if key.isupper() and isinstance(value, str)
        )
    ]

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(
        WorkflowExecution, on_delete=models.CASCADE, related_name="history"
    )
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    command_seq = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["execution", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "sequence"], name="durable_history_unique_sequence"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} {self.name}".rstrip()


class ActivityTask(models.Model):
    """One scheduled activity: claimed by a worker under a lease, completed at most once."""

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(
        WorkflowExecution, on_delete=models.CASCADE, related_name="activity_tasks"
    )
    command_seq = models.PositiveIntegerField()
    activity_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100, default="default")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="Retry policy and timeouts, as scheduled."
    )
    status = models.CharField(
        max_length=16, choices=ActivityStatus.CHOICES, default=ActivityStatus.QUEUED
    )
    attempt = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="The last attempt's error.")
    heartbeat_details = models.JSONField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set once the outcome is copied into the execution's history.
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "command_seq"], name="durable_activity_unique_command"
            )
        ]
        indexes = [
            models.Index(
                fields=["queue", "due_at"],
                name="durable_activity_queued_idx",
                condition=models.Q(status=ActivityStatus.QUEUED),
            ),
            models.Index(
                fields=["lease_until"],
                name="durable_activity_running_idx",
                condition=models.Q(status=ActivityStatus.RUNNING),
            ),
            models.Index(
                fields=["execution"],
                name="durable_activity_undelivered",
                condition=models.Q(delivered=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.activity_name} #{self.command_seq} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.command_seq}:{self.attempt}"


class PendingSignal(models.Model):
    """A signal sent but not yet delivered; moved into history by the next workflow task."""

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(
        WorkflowExecution, on_delete=models.CASCADE, related_name="pending_signals"
    )
    name = models.CharField(max_length=200)
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} -> {self.execution_id}"


class Worker(models.Model):
    """One worker process, as it last reported itself: for operators, and to tell which work
    no live worker can run (during a rolling deploy, old code does not know new names)."""

    id = models.CharField(primary_key=True, max_length=100)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True, help_text="Empty: every queue.")
    workflows = models.JSONField(
        default=list, blank=True, help_text="Names of the workflows its code registered."
    )
    activities = models.JSONField(
        default=list, blank=True, help_text="Names of the activities its code registered."
    )
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-heartbeat_at"]

    def __str__(self) -> str:
        return self.id
