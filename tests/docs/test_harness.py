"""The harness that runs documentation pages: where each block runs, and that a page leaves
nothing behind."""

import sys
from textwrap import dedent

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

from django_durable.models import WorkflowExecution
from django_durable.registry import register

from .blocks import python_blocks
from .harness import DocsExampleError, PageRun

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOWS = """
```python
# shop/durable_workflows.py
from django_durable import register


@register.activity()
def double(n: int) -> int:
    return 2 * n


@register.workflow()
async def twice(ctx, n: int) -> int:
    await ctx.sleep(3600)
    return await ctx.run_activity("shop.double", n)
```
"""


def run_page(tmp_path, text: str):
    path = tmp_path / "page.md"
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return PageRun(path, python_blocks(path), tmp_path / "run").run()


def test_a_page_module_registers_under_its_app_label_and_runs(tmp_path):
    report = run_page(
        tmp_path,
        WORKFLOWS
        + """
```python
from django_durable import run_workflow

result = run_workflow("shop.twice", n=21)
```
""",
    )
    assert report.summary() == "page.md: 2 run, 0 skipped"
    assert WorkflowExecution.objects.get().result == 42


def test_the_page_leaves_registry_apps_and_modules_as_they_were(tmp_path):
    workflows = dict(register.workflows)
    installed = list(settings.INSTALLED_APPS)
    run_page(tmp_path, WORKFLOWS)
    assert register.workflows == workflows
    assert "shop.twice" not in register.workflows
    assert list(settings.INSTALLED_APPS) == installed
    assert not apps.is_installed("shop")
    assert "shop" not in sys.modules and "shop.durable_workflows" not in sys.modules


def test_during_a_page_only_its_own_and_builtin_workflows_are_registered(tmp_path):
    assert "yourapp.onboard_user" in register.workflows
    report = run_page(
        tmp_path,
        """
        ```python
        from django_durable.registry import register

        names = sorted(register.workflows)
        assert names == ["django_durable.run_task"], names
        ```
        """,
    )
    assert report.ran == ["page.md:2"]


def test_the_tutorial_app_replaces_the_test_app_of_the_same_label(tmp_path):
    run_page(
        tmp_path,
        """
        ```python
        # yourapp/durable_workflows.py
        from django_durable import register


        @register.workflow()
        def onboard_user(ctx, user_id: int):
            return {"page": True}
        ```

        ```python
        from django_durable import run_workflow

        assert run_workflow("yourapp.onboard_user", user_id=1) == {"page": True}
        ```
        """,
    )
    assert (
        register.workflows["yourapp.onboard_user"].fn.__module__
        == "tests.yourapp.durable_workflows"
    )


def test_a_failing_block_names_its_page_and_line(tmp_path):
    with pytest.raises(DocsExampleError, match=r"page.md:6: the block raised NameError"):
        run_page(
            tmp_path,
            """
            ```python
            a = 1
            ```

            ```python
            undefined_name
            ```
            """,
        )


def test_a_skipped_block_is_counted_and_not_run(tmp_path):
    report = run_page(
        tmp_path,
        """
        <!-- docs-test: skip (needs the network) -->
        ```python
        raise RuntimeError("ran")
        ```
        """,
    )
    assert report.summary() == "page.md: 0 run, 1 skipped [page.md:3 (needs the network)]"


def test_models_get_a_table_for_the_page_only(tmp_path):
    run_page(
        tmp_path,
        """
        ```python
        # shop/models.py
        from django.db import models


        class Payment(models.Model):
            amount = models.IntegerField()
        ```

        ```python
        # shop/durable_activities.py
        from django_durable import register

        from .models import Payment


        @register.activity(transactional=True)
        def record(amount: int) -> int:
            return Payment.objects.create(amount=amount).pk
        ```

        ```python
        from shop.models import Payment

        Payment.objects.create(amount=3)
        assert Payment.objects.count() == 1
        ```
        """,
    )
    assert "shop_payment" not in connection.introspection.table_names()
    assert "shop" not in apps.all_models


def test_settings_apply_to_the_rest_of_the_page(tmp_path):
    run_page(
        tmp_path,
        """
        ```python
        # settings.py
        INSTALLED_APPS = ["django_durable"]
        DURABLE_DOCS_EXAMPLE = "set"
        ```

        ```python
        from django.conf import settings

        assert settings.DURABLE_DOCS_EXAMPLE == "set"
        ```
        """,
    )
    assert not hasattr(settings, "DURABLE_DOCS_EXAMPLE")


def test_settings_may_only_list_installed_apps(tmp_path):
    with pytest.raises(DocsExampleError, match="INSTALLED_APPS lists 'payments', not installed"):
        run_page(tmp_path, '```python\n# settings.py\nINSTALLED_APPS = ["payments"]\n```\n')


def test_a_worker_block_runs_what_it_starts_and_what_was_started_before(tmp_path):
    report = run_page(
        tmp_path,
        WORKFLOWS
        + """
```python
from django_durable import start_workflow

earlier = start_workflow("shop.twice", n=1)
```

<!-- docs-test: worker -->
```python
from django_durable import start_workflow, wait_workflow

assert wait_workflow(start_workflow("shop.twice", n=2)) == 4
assert wait_workflow(earlier, timeout=0) == 2
```
""",
    )
    assert len(report.ran) == 3


def test_top_level_await_runs_in_an_event_loop(tmp_path):
    run_page(
        tmp_path,
        WORKFLOWS
        + """
```python
from django_durable import run_workflow

assert await run_workflow("shop.twice", n=5) == 10
```
""",
    )


def test_on_django_5_2_django_tasks_stands_for_the_backport_during_the_page_only(tmp_path):
    import importlib.util

    if importlib.util.find_spec("django.tasks") is not None:
        pytest.skip("this Django has a tasks framework of its own")
    django_tasks = pytest.importorskip("django_tasks")
    run_page(
        tmp_path,
        """
        ```python
        import django_tasks
        from django.tasks import task
        from django.tasks.backends.immediate import ImmediateBackend

        assert task is django_tasks.task
        ```
        """,
    )
    assert "django.tasks" not in sys.modules
    assert django_tasks.__spec__.name == "django_tasks"
    assert sys.modules["django_tasks.backends.immediate"].__spec__.name == (
        "django_tasks.backends.immediate"
    )
