"""The admin: executions with their history and activities, read-only by design."""

from django.contrib import admin

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


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "workflow_name", "status", "workflow_id", "created_at", "finished_at"]
    list_filter = ["status", "workflow_name"]
    search_fields = ["id", "workflow_id", "workflow_name"]
    date_hierarchy = "created_at"
    inlines = [HistoryInline, ActivityInline, ChildInline]
    actions = ["cancel_executions"]

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
    list_display = ["id", "hostname", "pid", "queues", "started_at", "heartbeat_at", "stopped_at"]
    list_filter = ["hostname"]
