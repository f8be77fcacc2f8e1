"""Activity tasks, workers, history events and pending signals: read-only views of the
engine's tables. History is append-only: nobody, superusers included, adds, changes or
deletes an event here."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, Q
from django.utils import timezone

from ..conf import durable_setting
from ..constants import ActivityStatus
from ..models import ActivityTask, HistoryEvent, PendingSignal, Worker, WorkflowExecution
from ..store.workers import LIVE_LEASES
from .display import error_summary, execution_link, pretty_json, status_badge
from .lists import RegisteredActivityFilter, RegisteredQueueFilter, ScalableAdmin


def _execution_search(term: str, name_field: str) -> Q:
    """An execution id finds the rows of that execution; other text the start of a name."""
    try:
        return Q(execution_id=uuid.UUID(term))
    except ValueError:
        return Q(**{f"{name_field}__startswith": term})


class EngineTableAdmin(ScalableAdmin):
    """Rows the engine owns: shown, never added, changed or deleted by hand."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(_execution_search(term, self.search_name_field)), False

    @admin.display(description="execution")
    def execution_link(self, row) -> str:
        return execution_link(row.execution_id)


@admin.register(ActivityTask)
class ActivityTaskAdmin(EngineTableAdmin):
    list_display = [
        "activity_name",
        "execution_link",
        "command_seq",
        "badge",
        "attempt",
        "worker",
        "heartbeat_at",
        "due_at",
        "last_error",
    ]
    list_filter = ["status", RegisteredQueueFilter, RegisteredActivityFilter]
    search_fields = ["activity_name"]
    search_name_field = "activity_name"
    search_help_text = "An execution id, or the start of an activity name."
    ordering = ["-id"]  # the primary key's index: newest first at any size
    fields = [
        "activity_name",
        "execution_link",
        "command_seq",
        "queue",
        "badge",
        "attempt",
        "worker",
        "lease_until",
        "heartbeat_at",
        "heartbeat_json",
        "due_at",
        "created_at",
        "started_at",
        "finished_at",
        "args_json",
        "kwargs_json",
        "options_json",
        "result_json",
        "error_view",
    ]
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def badge(self, task: ActivityTask) -> str:
        return status_badge(task.status, task.get_status_display())

    @admin.display(description="worker")
    def worker(self, task: ActivityTask) -> str:
        return task.lease_owner if task.status == ActivityStatus.RUNNING else ""

    @admin.display(description="error")
    def last_error(self, task: ActivityTask) -> str:
        return error_summary(task.error)

    @admin.display(description="arguments")
    def args_json(self, task: ActivityTask) -> str:
        return pretty_json(task.args)

    @admin.display(description="keyword arguments")
    def kwargs_json(self, task: ActivityTask) -> str:
        return pretty_json(task.kwargs)

    @admin.display(description="options")
    def options_json(self, task: ActivityTask) -> str:
        return pretty_json(task.options)

    @admin.display(description="result")
    def result_json(self, task: ActivityTask) -> str:
        return pretty_json(task.result)

    @admin.display(description="heartbeat details")
    def heartbeat_json(self, task: ActivityTask) -> str:
        return pretty_json(task.heartbeat_details)

    @admin.display(description="error")
    def error_view(self, task: ActivityTask) -> str:
        return pretty_json(task.error)


@admin.register(HistoryEvent)
class HistoryEventAdmin(EngineTableAdmin):
    list_display = ["execution_link", "sequence", "kind", "command_seq", "name", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    search_name_field = "name"
    search_help_text = "An execution id, or the start of an event's name."
    ordering = ["-id"]
    fields = [
        "execution_link",
        "sequence",
        "kind",
        "command_seq",
        "name",
        "created_at",
        "data_json",
    ]
    readonly_fields = fields

    @admin.display(description="data")
    def data_json(self, event: HistoryEvent) -> str:
        return pretty_json(event.data)


@admin.register(PendingSignal)
class PendingSignalAdmin(EngineTableAdmin):
    list_display = ["name", "execution_link", "created_at"]
    search_fields = ["name"]
    search_name_field = "name"
    ordering = ["-id"]
    fields = ["name", "execution_link", "created_at", "payload_json"]
    readonly_fields = fields

    @admin.display(description="payload")
    def payload_json(self, signal: PendingSignal) -> str:
        return pretty_json(signal.payload)


def _worker_state(worker: Worker) -> str:
    if worker.stopped_at is not None:
        return "stopped"
    stale_after = timedelta(seconds=LIVE_LEASES * durable_setting("LEASE_SECONDS"))
    return "stale" if worker.heartbeat_at < timezone.now() - stale_after else "alive"


@admin.register(Worker)
class WorkerAdmin(EngineTableAdmin):
    list_display = [
        "id",
        "state",
        "hostname",
        "pid",
        "serves",
        "knows",
        "holds",
        "started_at",
        "heartbeat_at",
        "stopped_at",
    ]
    list_filter = ["hostname"]
    search_fields = ["id", "hostname"]
    fields = [
        "id",
        "state",
        "hostname",
        "pid",
        "serves",
        "holds",
        "started_at",
        "heartbeat_at",
        "stopped_at",
        "workflows",
        "activities",
    ]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        return admin.ModelAdmin.get_search_results(self, request, queryset, search_term)

    def annotate_page(self, rows) -> None:
        """What each worker on the page holds now: two grouped queries for the page."""
        owners = [worker.pk for worker in rows]
        now = timezone.now()
        activities = Counter(
            dict(
                ActivityTask.objects.filter(lease_owner__in=owners, status=ActivityStatus.RUNNING)
                .values_list("lease_owner")
                .annotate(n=Count("pk"))
            )
        )
        tasks = Counter(
            dict(
                WorkflowExecution.objects.filter(lease_owner__in=owners, lease_until__gt=now)
                .values_list("lease_owner")
                .annotate(n=Count("pk"))
            )
        )
        for worker in rows:
            worker.held = (activities[worker.pk], tasks[worker.pk])

    @admin.display(description="state")
    def state(self, worker: Worker) -> str:
        return status_badge(_worker_state(worker))

    @admin.display(description="queues")
    def serves(self, worker: Worker) -> str:
        return ", ".join(worker.queues) or "every queue"

    @admin.display(description="registered")
    def knows(self, worker: Worker) -> str:
        return f"{len(worker.workflows)} workflows, {len(worker.activities)} activities"

    @admin.display(description="holds now")
    def holds(self, worker: Worker) -> str:
        held = getattr(worker, "held", None)
        if held is None:
            self.annotate_page([worker])
            held = worker.held
        activities, tasks = held
        return f"{activities} activity attempt(s), {tasks} workflow task(s)"
