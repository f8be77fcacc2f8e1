"""Version markers: `patched`, `deprecate_patch` and `get_version`, decided against history.

A marker is a command (`marker_recorded`) that says which code an execution ran at one
point. A live workflow task records one; a replayed workflow task follows the one history
holds at the same point, or, when history has none there, the code that ran before the
marker existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..constants import EventKind
from ..exceptions import NonDeterminismError
from .events import Event

if TYPE_CHECKING:
    from .context import WorkflowInfo

DEFAULT_VERSION = -1
"""What `get_version` returns for an execution whose history predates the change."""

PATCH = "patch"
VERSION = "version"


class VersionMarkers:
    """The marker commands of a `WorkflowInstance`, and its memo of what each one decided.

    The instance sets `_recorded` to the commands history holds for the workflow task being
    replayed (None while live); the command the code is about to issue is compared with
    `_recorded[len(_commands)]`, the recorded command at the same position.
    """

    info: WorkflowInfo
    _commands: list[Event]
    _recorded: list[Event] | None

    def _next_seq(self) -> int:  # pragma: no cover - provided by WorkflowInstance
        raise NotImplementedError

    def _init_markers(self) -> None:
        self._recorded = None
        self._patches: dict[str, bool] = {}
        self._versions: dict[str, int] = {}
        self.nondeterminism: NonDeterminismError | None = None

    @property
    def replaying(self) -> bool:
        """True while a workflow task whose commands history already holds is re-run."""
        return self._recorded is not None

    def _recorded_marker(self, kind: str, name: str) -> Event | None:
        """The marker history holds at this point for (`kind`, `name`), if any."""
        position = len(self._commands)
        if self._recorded is None or position >= len(self._recorded):
            return None
        recorded = self._recorded[position]
        if (
            recorded.kind == EventKind.MARKER_RECORDED
            and recorded.name == name
            and recorded.data.get("kind") == kind
        ):
            return recorded
        return None

    def _record_marker(self, name: str, data: dict) -> None:
        self._commands.append(Event(EventKind.MARKER_RECORDED, self._next_seq(), name, data))

    def patched(self, patch_id: str, *, deprecated: bool = False) -> bool:
        """True when this execution runs the code behind `patch_id` (see `ctx.patched`)."""
        if patch_id in self._patches:
            return self._patches[patch_id]
        if self.replaying:
            taken = self._recorded_marker(PATCH, patch_id) is not None
        else:
            taken = True
        if taken:
            self._record_marker(patch_id, {"kind": PATCH, "deprecated": deprecated})
        self._patches[patch_id] = taken
        return taken

    def get_version(self, change_id: str, min_supported: int, max_supported: int) -> int:
        """The version of `change_id` this execution runs (see `ctx.get_version`)."""
        if min_supported > max_supported:
            raise ValueError(
                f"get_version({change_id!r}): min_supported ({min_supported}) is greater "
                f"than max_supported ({max_supported})."
            )
        if change_id in self._versions:
            version = self._versions[change_id]
        elif self.replaying:
            marker = self._recorded_marker(VERSION, change_id)
            version = DEFAULT_VERSION if marker is None else marker.data["version"]
            if marker is not None:
                self._record_marker(change_id, {"kind": VERSION, "version": version})
        else:
            version = max_supported
            self._record_marker(change_id, {"kind": VERSION, "version": version})
        self._versions[change_id] = version
        if not min_supported <= version <= max_supported:
            found = "no marker, so version" if version == DEFAULT_VERSION else "version"
            self._fail_nondeterministic(
                f"Workflow {self.info.workflow_name!r} (execution {self.info.execution_id}) "
                f"is not deterministic: get_version({change_id!r}) found {found} {version} in "
                f"history, outside the supported range [{min_supported}, {max_supported}]. "
                f"Deploy code that still supports version {version}."
            )
        return version

    def _fail_nondeterministic(self, message: str) -> None:
        """Raise inside the workflow, and keep the error so the activation raises it too.

        The workflow's own code may catch it; the execution is parked all the same.
        """
        error = NonDeterminismError(message)
        if self.nondeterminism is None:
            self.nondeterminism = error
        raise error
