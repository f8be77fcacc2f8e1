"""Executions: the list an operator starts from, and the page that shows what one did."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html, format_html_join

from .. import store
from ..constants import ExecutionStatus
from ..models import ActivityTask, WorkflowExecution
from .actions import RETRYABLE, OperatorActions
from .display import (
    duration_text,
    error_summary,
    execution_link,
    moment_text,
    pretty_json,
    status_badge,
)
from .lists import COUNT_CAP, RegisteredWorkflowFilter, ScalableAdmin
from .timeline import build_timeline
from .waiting import describe_waiting, open_attempts

RELATED_SHOWN = 50  # activities and children listed on an execution's page


class WaitingForWorkerFilter(admin.SimpleListFilter):
    """Executions that no live worker can run: during a rolling deploy, the old code's
    workers do not know the new workflows and activities, which wait for new workers."""

    title = "waiting for a worker"
    parameter_name = "waiting_for_worker"

    def lookups(self, request, model_admin):
        return [("yes", "that knows its workflow or activity")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(Q(unknown_workflow=True) | Q(unknown_activity__isnull=False))
        return queryset


def _search(term: str) -> Q:
    """An id finds its execution by primary key or workflow id; other text matches the
    start of a workflow id or name. Each one can use an index, unlike a substring match."""
    try:
        as_uuid = uuid.UUID(term)
    except ValueError:
        return (
            Q(workflow_id=term)
            | Q(workflow_id__startswith=term)
            | Q(workflow_name__startswith=term)
        )
    return Q(pk=as_uuid) | Q(workflow_id=term)


def _retry_ids(execution: WorkflowExecution) -> list:
    return list(execution.retries.order_by("created_at").values_list("pk", flat=True)[:20])


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(OperatorActions, ScalableAdmin):
    list_display = [
        "badge",
        "workflow_name",
        "execution_id",
        "workflow_id",
        "waits_for",
        "started",
        "finished",
        "duration",
        "parent_execution",
    ]
    list_display_links = ["execution_id"]
    list_filter = [
        "status",
        RegisteredWorkflowFilter,
        ("created_at", admin.DateFieldListFilter),
        WaitingForWorkerFilter,
    ]
    search_fields = ["id", "workflow_id", "workflow_name"]
    search_help_text = "An execution id or workflow id, or the start of a workflow name."
    actions = ["cancel_executions"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "workflow_name",
                    "workflow_id",
                    "badge",
                    "waits_for",
                    "parent_execution",
                    "retry_links",
                ]
            },
        ),
        ("Times", {"fields": ["created_at", "finished_at", "duration", "timeout_at"]}),
        ("Input, result and error", {"fields": ["input_json", "result_json", "error_view"]}),
        (
            "Cancellation and scheduling",
            {
                "classes": ["collapse"],
                "fields": [
                    "cancel_requested",
                    "cancel_reason",
                    "wake_at",
                    "lease_owner",
                    "lease_until",
                    "epoch",
                    "inbox_version",
                ],
            },
        ),
    ]
    readonly_fields = [
        "badge",
        "waits_for",
        "parent_execution",
        "retry_links",
        "duration",
        "input_json",
        "result_json",
        "error_view",
    ]

    def get_queryset(self, request):
        # One query for the live workers; the rest rides on the executions' own query.
        return store.annotate_waiting(super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(_search(term)), False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting under a running worker would bypass the engine: durable_prune deletes.
        return False

    def annotate_page(self, rows) -> None:
        attempts = open_attempts(rows)
        for row in rows:
            row.attempts = attempts

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def badge(self, execution: WorkflowExecution) -> str:
        return status_badge(execution.status, execution.get_status_display())

    @admin.display(description="execution", ordering="id")
    def execution_id(self, execution: WorkflowExecution) -> str:
        return str(execution.pk)[:8]

    @admin.display(description="started", ordering="created_at")
    def started(self, execution: WorkflowExecution) -> str:
        return moment_text(execution.created_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, execution: WorkflowExecution) -> str:
        return moment_text(execution.finished_at) or "-"

    @admin.display(description="duration")
    def duration(self, execution: WorkflowExecution) -> str:
        return duration_text(execution.created_at, execution.finished_at)

    @admin.display(description="parent")
    def parent_execution(self, execution: WorkflowExecution) -> str:
        return execution_link(execution.parent_id) or "-"

    @admin.display(description="waiting for")
    def waits_for(self, execution: WorkflowExecution) -> str:
        attempts = getattr(execution, "attempts", None)
        if attempts is None:
            attempts = open_attempts([execution])
        return describe_waiting(execution, attempts) or "-"

    @admin.display(description="retries")
    def retry_links(self, execution: WorkflowExecution) -> str:
        parts = []
        if execution.retried_from_id:
            parts.append(format_html("retries {}", execution_link(execution.retried_from_id)))
        later = getattr(execution, "retry_ids", None)
        if later is None:
            later = _retry_ids(execution)
        if later:
            links = format_html_join(", ", "{}", ((execution_link(pk),) for pk in later))
            parts.append(format_html("retried as {}", links))
        return format_html_join("; ", "{}", ((part,) for part in parts)) or "-"

    @admin.display(description="input")
    def input_json(self, execution: WorkflowExecution) -> str:
        return pretty_json(execution.input)

    @admin.display(description="result")
    def result_json(self, execution: WorkflowExecution) -> str:
        return pretty_json(execution.result) or "-"

    @admin.display(description="error")
    def error_view(self, execution: WorkflowExecution) -> str:
        error = execution.error
        if not error:
            return "-"
        return format_html(
            '<strong class="durable-error">{}</strong><pre class="durable-traceback">{}</pre>',
            error_summary(error),
            error.get("traceback", ""),
        )

    # -- the list's top and the page's sections --------------------------------------------

    def changelist_view(self, request, extra_context=None):
        counts = store.count_by_status(COUNT_CAP)
        extra_context = {
            **(extra_context or {}),
            "status_counts": [
                {
                    "status": value,
                    "label": label,
                    "badge": status_badge(value, label),
                    "count": counts.get(value, 0),
                    "capped": counts.get(value, 0) > COUNT_CAP,
                }
                for value, label in ExecutionStatus.CHOICES
            ],
            "count_cap": COUNT_CAP,
            "may_start": self.may(request, "start"),
        }
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._sections(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _sections(self, request, execution: WorkflowExecution) -> dict:
        try:
            page = int(request.GET.get("timeline", "1"))
        except ValueError:
            page = 1
        activities = list(
            ActivityTask.objects.filter(execution=execution).order_by("command_seq")[
                : RELATED_SHOWN + 1
            ]
        )
        children = list(
            WorkflowExecution.objects.filter(parent=execution).order_by("parent_command_seq")[
                : RELATED_SHOWN + 1
            ]
        )
        error = execution.error or {}
        live = execution.status in (ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED)
        execution.retry_ids = _retry_ids(execution)  # shown by retry_links too
        return {
            "timeline": build_timeline(execution, page),
            "activities": [
                (task, status_badge(task.status), error_summary(task.error))
                for task in activities[:RELATED_SHOWN]
            ],
            "more_activities": len(activities) > RELATED_SHOWN,
            "children": [(child, status_badge(child.status)) for child in children][:RELATED_SHOWN],
            "more_children": len(children) > RELATED_SHOWN,
            "nondeterminism": (
                {"expected": error.get("expected"), "found": error.get("found")}
                if execution.status == ExecutionStatus.BLOCKED and error.get("expected")
                else None
            ),
            "may_signal": live and self.may(request, "signal"),
            "may_cancel": live and self.may(request, "cancel"),
            # An ended child is retried through its parent; a parked one resumes in place.
            "may_retry": (
                (
                    execution.status in RETRYABLE
                    and execution.parent_id is None
                    and not execution.retry_ids  # retried once: retry the retry
                )
                or execution.status == ExecutionStatus.BLOCKED
            )
            and self.may(request, "retry"),
            "retry_label": "Resume" if execution.status == ExecutionStatus.BLOCKED else "Retry",
        }
