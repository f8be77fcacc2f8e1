"""The operator's actions on executions: start, signal, cancel, retry or resume.

Each one is behind its own permission (a user without it sees no button and gets 403 on
the URL), writes through the public API so every guarantee holds as for code, and leaves
a `LogEntry` saying who did what.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from .. import api
from ..constants import ExecutionStatus
from ..exceptions import DurableError, ExecutionFinished
from ..models import WorkflowExecution
from .forms import CancelForm, SignalForm, StartForm

PERMISSIONS = {
    "cancel": "django_durable.cancel_execution",
    "signal": "django_durable.signal_execution",
    "start": "django_durable.start_execution",
    "retry": "django_durable.retry_execution",
}
RETRYABLE = {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.CANCELED}


class OperatorActions:
    """Mixed into the executions' ModelAdmin: the URLs, views and action of the console."""

    def may(self, request: HttpRequest, action: str) -> bool:
        return request.user.has_perm(PERMISSIONS[action])

    def _require(self, request: HttpRequest, action: str) -> None:
        if not self.may(request, action):
            raise PermissionDenied

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self.may(request, "cancel")

    def get_urls(self):
        def view(fn):
            return self.admin_site.admin_view(fn)

        return [
            path("start/", view(self.start_view), name="django_durable_workflowexecution_start"),
            path(
                "<path:object_id>/signal/",
                view(self.signal_view),
                name="django_durable_workflowexecution_signal",
            ),
            path(
                "<path:object_id>/cancel/",
                view(self.cancel_view),
                name="django_durable_workflowexecution_cancel",
            ),
            path(
                "<path:object_id>/retry/",
                view(self.retry_view),
                name="django_durable_workflowexecution_retry",
            ),
            *super().get_urls(),
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _execution(self, request: HttpRequest, object_id: str) -> WorkflowExecution:
        try:
            execution = self.get_object(request, unquote(object_id))
        except Exception:  # a malformed id: as unknown as any other
            execution = None
        if execution is None:
            raise Http404("No workflow execution has that id.")
        return execution

    def _page(
        self, request: HttpRequest, title: str, form, *, execution=None, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/django_durable/workflowexecution/action_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": title,
                "form": form,
                "original": execution,
                **context,
            },
        )

    def _to_execution(self, execution_id: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:django_durable_workflowexecution_change", args=[execution_id])
        )

    # -- start -----------------------------------------------------------------------------

    def start_view(self, request: HttpRequest) -> HttpResponse:
        self._require(request, "start")
        form = StartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            asked_at = timezone.now()
            try:
                execution_id = api.start_workflow(
                    data["workflow"],
                    workflow_id=data["workflow_id"] or None,
                    execution_timeout=data["execution_timeout"],
                    **data["input"],
                )
            except DurableError as exc:
                form.add_error("input", str(exc))
            else:
                execution = WorkflowExecution.objects.get(pk=execution_id)
                if execution.created_at < asked_at:
                    self.message_user(
                        request,
                        f"Execution {execution_id} "
                        f"({execution.get_status_display().lower()}) already has workflow id "
                        f"{data['workflow_id']}: nothing was started.",
                        messages.WARNING,
                    )
                else:
                    self.log_addition(request, execution, f"Started {data['workflow']}.")
                    self.message_user(request, f"Started {data['workflow']}: {execution_id}.")
                return self._to_execution(execution_id)
        return self._page(request, "Start a workflow", form, submit="Start")

    # -- signal ----------------------------------------------------------------------------

    def signal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(request, "signal")
        execution = self._execution(request, object_id)
        form = SignalForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            name, payload = form.cleaned_data["name"], form.cleaned_data["payload"]
            try:
                api.send_signal(execution.pk, name, payload)
            except DurableError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_change(request, execution, f"Sent signal {name!r}.")
                self.message_user(request, f"Sent signal {name!r} to {execution.pk}.")
                return self._to_execution(execution.pk)
        return self._page(
            request, f"Send a signal to {execution}", form, execution=execution, submit="Send"
        )

    # -- cancel ----------------------------------------------------------------------------

    def _cancel(self, request: HttpRequest, executions, reason: str) -> tuple[int, int]:
        """Ask each execution to cancel; returns (asked, already ended)."""
        asked = ended = 0
        for execution in executions:
            try:
                api.cancel_workflow(execution.pk, reason)
            except ExecutionFinished:
                ended += 1
                continue
            self.log_change(request, execution, f"Asked to cancel: {reason or 'no reason'}.")
            asked += 1
        return asked, ended

    def _reason(self, request: HttpRequest, form: CancelForm) -> str:
        given = form.cleaned_data["reason"]
        return given or f"Canceled in the admin by {request.user}."

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(request, "cancel")
        execution = self._execution(request, object_id)
        form = CancelForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                asked, _ = self._cancel(request, [execution], self._reason(request, form))
            except DurableError as exc:
                form.add_error("reason", str(exc))
            else:
                if asked:
                    self.message_user(request, f"Asked {execution.pk} to cancel.")
                else:
                    self.message_user(request, "It had ended already.", messages.WARNING)
                return self._to_execution(execution.pk)
        return self._page(
            request, f"Cancel {execution}", form, execution=execution, submit="Cancel it"
        )

    def cancel_executions(self, request: HttpRequest, queryset):
        """The change list's action: asks for a reason first, then cancels each one."""
        form = CancelForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            try:
                asked, ended = self._cancel(request, queryset, self._reason(request, form))
            except DurableError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(request, f"Asked {asked} execution(s) to cancel; {ended} had ended.")
            return None
        return self._page(
            request,
            "Cancel the selected executions",
            form,
            submit="Cancel them",
            selected=queryset,
            action="cancel_executions",
        )

    cancel_executions.short_description = "Cancel selected executions"
    cancel_executions.allowed_permissions = ("cancel",)

    # -- retry and resume ------------------------------------------------------------------

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(request, "retry")
        execution = self._execution(request, object_id)
        if request.method == "POST":
            try:
                new_id = api.retry_workflow(execution.pk)
            except DurableError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return self._to_execution(execution.pk)
            if uuid.UUID(str(new_id)) == execution.pk:
                self.log_change(request, execution, "Resumed with the code deployed now.")
                self.message_user(request, f"Resumed {execution.pk} with the current code.")
            else:
                self.log_change(request, execution, f"Retried as {new_id}.")
                self.message_user(request, f"Retried as a new execution: {new_id}.")
            return self._to_execution(new_id)
        parked = execution.status == ExecutionStatus.BLOCKED
        return self._page(
            request,
            f"{'Resume' if parked else 'Retry'} {execution}",
            None,
            execution=execution,
            submit="Resume it" if parked else "Retry it",
            explanation=(
                "The execution continues from its history with the code deployed now."
                if parked
                else "A new execution starts with the same input and workflow id, linked "
                "to this one."
            ),
        )
