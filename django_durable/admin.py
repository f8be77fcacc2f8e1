"""The admin: executions with their history and activities, read-only by design."""

from django.contrib import admin
from django.db.models import Q

from . import store
from .exceptions import ExecutionFinished
from .models import ActivityTask, HistoryEvent, PendingSignal, Worker, WorkflowExecution


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class HistoryInline(ReadOnlyInline):
    model = HistoryEvent
    fields = ["sequence", "kind", "command_seq", "name", "data", "created_at"]
    readonly_fields = fields


class ActivityInline(ReadOnlyInline):
    model = ActivityTask
    fields = ["command_seq", "activity_name", "status", "attempt", "finished_at"]
    readonly_fields = fields


class ChildInline(ReadOnlyInline):
    model = WorkflowExecution
    fk_name = "parent"
    fields = ["workflow_name", "status", "created_at"]
    readonly_fields = fields
    verbose_name_plural = "child executions"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "workflow_name",
        "status",
        "waiting_for",
        "workflow_id",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", WaitingForWorkerFilter, "workflow_name"]
    search_fields = ["id", "workflow_id", "workflow_name"]
    readonly_fields = ["waiting_for"]
    date_hierarchy = "created_at"
    inlines = [HistoryInline, ActivityInline, ChildInline]
    actions = ["cancel_executions"]

    def get_queryset(self, request):
        # One query for the live workers; the rest rides on the executions' own query.
        return store.annotate_waiting(super().get_queryset(request))

    @admin.display(description="waiting for")
    def waiting_for(self, execution: WorkflowExecution) -> str:
        """What no live worker can run yet: empty when the execution is not stuck so."""
        if getattr(execution, "unknown_workflow", False):
            return f"a worker that knows workflow {execution.workflow_name}"
        if name := getattr(execution, "unknown_activity", None):
            return f"a worker that knows activity {name}"
        return ""

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("django_durable.change_workflowexecution")

    @admin.action(description="Cancel selected executions", permissions=["cancel"])
    def cancel_executions(self, request, queryset):
        """Ask each live execution to cancel, as `cancel_workflow` does; skip ended ones."""
        canceled = 0
        for execution in queryset:
            try:
                store.request_cancel(
                    execution.pk, reason=f"Canceled in the admin by {request.user}."
                )
            except ExecutionFinished:
                continue
            canceled += 1
        self.message_user(
            request,
            f"Asked {canceled} execution(s) to cancel; {len(queryset) - canceled} had ended.",
        )


@admin.register(ActivityTask)
class ActivityTaskAdmin(ReadOnlyAdmin):
    list_display = ["activity_name", "execution", "command_seq", "status", "attempt", "due_at"]
    list_filter = ["status", "queue", "activity_name"]
    search_fields = ["activity_name", "execution__id"]
    raw_id_fields = ["execution"]


@admin.register(HistoryEvent)
class HistoryEventAdmin(ReadOnlyAdmin):
    list_display = ["execution", "sequence", "kind", "command_seq", "name", "created_at"]
    list_filter = ["kind"]
    search_fields = ["execution__id", "name"]
    raw_id_fields = ["execution"]


@admin.register(PendingSignal)
class PendingSignalAdmin(ReadOnlyAdmin):
    list_display = ["name", "execution", "created_at"]
    raw_id_fields = ["execution"]


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "hostname",
        "pid",
        "queues",
        "knows",
        "started_at",
        "heartbeat_at",
        "stopped_at",
    ]
    list_filter = ["hostname"]

    @admin.display(description="registered")
    def knows(self, worker: Worker) -> str:
        return f"{len(worker.workflows)} workflows, {len(worker.activities)} activities"
