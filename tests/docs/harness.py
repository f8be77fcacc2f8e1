"""Runs the Python blocks of one documentation page, in page order, as a reader would.

What a block's first line says decides where it runs:

- `# <app>/<path>.py` (`# shop/durable_activities.py`, `# shop/tests/test_histories.py`):
  the block is (part of) that module of the app `<app>`. Each such app of the page is a
  real, installed Django app for the page's run: a package of that name (in a temporary
  directory, created empty) added to `INSTALLED_APPS` in place of a test app with the same
  label (the tutorial's `yourapp` replaces `tests.yourapp`). So `@register.workflow()`
  names a workflow `"shop.order"` exactly as in a project, `from .models import Payment`
  and `from shop.tasks import add` work, and a block naming the same file again goes on in
  that module's namespace. Models a block defines get their tables (dropped after the
  page).
- `# settings.py` (or `# <anything>/settings.py`): a settings snippet. It runs in a
  namespace of its own; its upper-case names are applied with `override_settings` for the
  rest of the page, except `INSTALLED_APPS` (each app it lists must be installed in the
  test project, the page's own apps aside) and `DATABASES` (never overridden).
- anything else: code typed in `manage.py shell`, a script or a view, run in one namespace
  shared by the page's other such blocks. A block that uses `await` at its top level runs
  in an event loop of its own, as in an async view.

The page runs against the test project (`tests.settings`) and its test database. During the
page the workflow registry holds django_durable's own definitions and the page's, nothing
else; it is restored afterwards, as are the settings, the apps and `sys.modules`. On Django
5.2, where the tasks framework is the `django-tasks` backport, `django.tasks` stands for
`django_tasks` during the page, as the tasks page tells its readers to do.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import signal
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings

from django_durable.constants import ExecutionStatus
from django_durable.engine.inline import InlineRunner
from django_durable.exceptions import WorkflowBlocked
from django_durable.models import WorkflowExecution
from django_durable.registry import register

from .blocks import Block, page_name

BLOCK_SECONDS = 120
"""A block still running after this long waits for something nobody will do (a worker)."""

NEVER_OVERRIDDEN = {"DATABASES"}
BUILTIN_PREFIX = "django_durable."


class DocsExampleError(AssertionError):
    """A block of a page failed; the message names the page and line."""


@dataclass
class PageReport:
    """What happened to a page's blocks."""

    page: str
    ran: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.page}: {len(self.ran)} run, {len(self.skipped)} skipped"
        reasons = "; ".join(f"{where} ({reason})" for where, reason in self.skipped)
        return f"{text} [{reasons}]" if reasons else text


def _is_settings(path: str) -> bool:
    return path.rsplit("/", 1)[-1] == "settings.py"


def page_apps(blocks: list[Block]) -> list[str]:
    """The apps a page writes modules into, in order of appearance (`["shop"]`)."""
    labels: list[str] = []
    for block in blocks:
        path = block.file
        if block.skip is None and path and "/" in path and not _is_settings(path):
            label = path.split("/", 1)[0]
            if label not in labels:
                labels.append(label)
    return labels


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `django.tasks[.x]` as the module `django_tasks[.x]` itself."""

    ALIAS, TARGET = "django.tasks", "django_tasks"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.ALIAS and not fullname.startswith(self.ALIAS + "."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def create_module(self, spec):
        target = importlib.import_module(self.TARGET + spec.name.removeprefix(self.ALIAS))
        self._own_specs[target.__name__] = target.__spec__
        return target

    def exec_module(self, module):
        """The target module ran when it was imported; give it back its own `__spec__`,
        which the import system has just replaced with the alias's."""
        module.__spec__ = self._own_specs.pop(module.__name__)


@contextlib.contextmanager
def _django_tasks_alias() -> Iterator[None]:
    """`django.tasks` as the backport, where Django has no tasks framework of its own."""
    has_own = importlib.util.find_spec("django.tasks") is not None
    if has_own or importlib.util.find_spec("django_tasks") is None:
        yield
        return
    finder = _AliasFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        aliased = finder.ALIAS + "."
        for name in [name for name in sys.modules if f"{name}.".startswith(aliased)]:
            del sys.modules[name]
        import django

        django.__dict__.pop("tasks", None)


class InlineWorker:
    """Stands in for `manage.py durable_worker` while a block runs.

    A thread drives every running execution (children included) with the inline engine of
    `run_workflow`: activities run in this process and timers are fast-forwarded. It first
    runs what earlier blocks started (the worker has been running since the page said to
    start it), then goes on while the block runs: an execution that waits for a signal is
    looked at again until the block has sent it. When the block ends, the worker stops once
    nothing moves any more.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="docs-worker", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> InlineWorker:
        while self._drive_all():  # what earlier blocks started, before this block runs
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(BLOCK_SECONDS)
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def _loop(self) -> None:
        try:
            while True:
                progressed = self._drive_all()
                if self._stop.is_set() and not progressed:
                    return
                if not progressed:
                    self._stop.wait(0.05)
        except BaseException as error:  # reported by __exit__ in the test's thread
            self.error = error
        finally:
            connections.close_all()

    def _drive_all(self) -> bool:
        """Drive each running root execution as far as it goes; True if any moved."""
        progressed = False
        roots = WorkflowExecution.objects.filter(
            status=ExecutionStatus.RUNNING, parent__isnull=True
        ).values_list("pk", flat=True)
        for execution_id in list(roots):
            runner = InlineRunner(execution_id)
            with contextlib.suppress(WorkflowBlocked):
                async_to_sync(runner.run)()
                progressed = True
        return progressed


@contextlib.contextmanager
def _time_limit(block: Block) -> Iterator[None]:
    """Fail a block that hangs (SIGALRM: the main thread only, as pytest runs tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise DocsExampleError(
            f"{block.where} did not finish in {BLOCK_SECONDS} s. If it waits for a worker, "
            f"mark it <!-- docs-test: worker -->."
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(BLOCK_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class PageRun:
    """One page's run: set up its apps, run its blocks, put everything back."""

    def __init__(self, page: Path, blocks: list[Block], workdir: Path) -> None:
        self.page = page
        self.blocks = blocks
        self.workdir = workdir
        self.labels = page_apps(blocks)
        self.report = PageReport(page_name(page))
        self.shell: dict = {"__name__": "__main__"}
        self.modules: dict[str, types.ModuleType] = {}
        self.tables: list[type] = []
        self.stack = contextlib.ExitStack()

    def run(self) -> PageReport:
        with self.stack:
            self.stack.enter_context(_django_tasks_alias())
            self._isolate_registry()
            self._install_apps()
            for block in self.blocks:
                if block.skip is not None:
                    self.report.skipped.append((block.where, block.skip))
                    continue
                self._run_block(block)
                self.report.ran.append(block.where)
        return self.report

    # -- isolation -------------------------------------------------------------------

    def _isolate_registry(self) -> None:
        saved = dict(register.workflows), dict(register.activities)

        def restore() -> None:
            register.workflows.clear()
            register.workflows.update(saved[0])
            register.activities.clear()
            register.activities.update(saved[1])

        self.stack.callback(restore)
        for table in (register.workflows, register.activities):
            for name in [name for name in table if not name.startswith(BUILTIN_PREFIX)]:
                del table[name]

    def _install_apps(self) -> None:
        if not self.labels:
            return
        for label in self.labels:
            if label in sys.modules or importlib.util.find_spec(label) is not None:
                raise DocsExampleError(
                    f"{page_name(self.page)}: the docs app {label!r} would shadow an importable "
                    f"module of that name."
                )
            self._package(label)
        replaced = {config.name for config in apps.get_app_configs() if config.label in self.labels}
        installed = [app for app in settings.INSTALLED_APPS if app not in replaced]
        self.stack.enter_context(override_settings(INSTALLED_APPS=[*installed, *self.labels]))
        self.stack.callback(self._drop_tables)

    def _package(self, name: str) -> types.ModuleType:
        """The (empty) package `name`, in a directory of the run's own."""
        if name in self.modules:
            return self.modules[name]
        directory = self.workdir.joinpath(*name.split("."))
        directory.mkdir(parents=True, exist_ok=True)
        package = types.ModuleType(name)
        package.__path__ = [str(directory)]
        package.__file__ = str(directory / "__init__.py")
        self._add_module(package)
        return package

    def _add_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(self._package(parent), child, module)
        self.modules[name] = module
        sys.modules[name] = module
        self.stack.callback(sys.modules.pop, name, None)

    def _drop_tables(self) -> None:
        if self.tables:
            with connection.schema_editor() as editor:
                for model in reversed(self.tables):
                    editor.delete_model(model)
        for label in self.labels:
            apps.all_models.pop(label, None)
        apps.clear_cache()

    # -- blocks ----------------------------------------------------------------------

    def _run_block(self, block: Block) -> None:
        path = block.file
        try:
            with _time_limit(block), contextlib.ExitStack() as during:
                if block.worker:
                    during.enter_context(InlineWorker())
                if path and _is_settings(path):
                    self._run_settings(block)
                elif path and "/" in path:
                    self._run_module(block, path)
                else:
                    self._run_shell(block)
        except DocsExampleError:
            raise
        except BaseException as error:
            raise DocsExampleError(
                f"{block.where}: the block raised {type(error).__name__}: {error}\n"
                f"Fix the example, or mark it <!-- docs-test: skip (reason) --> if it "
                f"cannot run."
            ) from error

    def _compile(self, block: Block, flags: int = 0) -> types.CodeType:
        """The block, compiled so that tracebacks show the page's own line numbers."""
        source = "\n" * (block.line - 1) + block.code
        return compile(source, str(self.page), "exec", flags=flags, dont_inherit=True)

    def _run_settings(self, block: Block) -> None:
        namespace: dict = {"__name__": "settings"}
        exec(self._compile(block), namespace)
        names = {key: value for key, value in namespace.items() if key.isupper()}
        for app in names.pop("INSTALLED_APPS", []):
            if not apps.is_installed(app):
                raise DocsExampleError(
                    f"{block.where}: INSTALLED_APPS lists {app!r}, not installed."
                )
        for name in NEVER_OVERRIDDEN & names.keys():
            del names[name]
        if names:
            self.stack.enter_context(override_settings(**names))

    def _run_module(self, block: Block, path: str) -> None:
        name = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        module = self.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__file__ = str(self.workdir / path)
            module.__package__ = name.rpartition(".")[0]
            self._add_module(module)
        label = name.split(".", 1)[0]
        before = set(apps.all_models.get(label, {}).values())
        exec(self._compile(block), module.__dict__)
        self._create_tables(set(apps.all_models.get(label, {}).values()) - before)

    def _create_tables(self, models: set[type]) -> None:
        if not models:
            return
        with connection.schema_editor() as editor:
            for model in sorted(models, key=lambda model: model.__name__):
                editor.create_model(model)
                self.tables.append(model)

    def _run_shell(self, block: Block) -> None:
        code = self._compile(block, flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, self.shell))
        else:
            exec(code, self.shell)
