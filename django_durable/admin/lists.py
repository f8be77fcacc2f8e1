"""Change lists that cost the same at any size: capped counts, filters that read no table,
and one query per page for what the rows show beside their own columns."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from ..registry import register

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most `COUNT_CAP + 1` rows: a COUNT(*) over millions of executions would read
    them all to print one number. Above the cap the console says "more than 10,000"."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_CAP + 1].count()


class PageChangeList(ChangeList):
    """A change list that lets its admin fetch what the page's rows show in one query
    (attempts, what workers hold) instead of one query a row."""

    def get_results(self, request) -> None:
        super().get_results(request)
        self.capped = self.result_count > COUNT_CAP
        self.model_admin.annotate_page(self.result_list)


class ScalableAdmin(admin.ModelAdmin):
    """Read-only by default; lists paginated by `CappedPaginator`, without the full count."""

    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice reads the whole table
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return PageChangeList

    def annotate_page(self, rows) -> None:
        """Attach to `rows` (the page) what their columns need from other tables."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RegisteredNameFilter(admin.SimpleListFilter):
    """A filter whose choices come from the registry: listing the values in the table would
    read it all. Subclasses name the field and the registered values."""

    def registered(self) -> set[str]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return [(value, value) for value in sorted(self.registered())]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(**{self.parameter_name: self.value()})


class RegisteredWorkflowFilter(RegisteredNameFilter):
    title = "workflow"
    parameter_name = "workflow_name"

    def registered(self) -> set[str]:
        return set(register.workflows)


class RegisteredActivityFilter(RegisteredNameFilter):
    title = "activity"
    parameter_name = "activity_name"

    def registered(self) -> set[str]:
        return set(register.activities)


class RegisteredQueueFilter(RegisteredNameFilter):
    title = "queue"
    parameter_name = "queue"

    def registered(self) -> set[str]:
        return {definition.queue for definition in register.activities.values()}
