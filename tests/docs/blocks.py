"""The Python code blocks of a Markdown page, with the markers that tell the harness how to run
each one.

A block is a fence tagged `python` (or `py`), indented or not (inside content tabs and
admonitions too). What comes right before it, on the lines above with only blank lines
between, may be one HTML comment that the rendered page does not show:

- `<!-- docs-test: skip (reason) -->`: the block is not run; the reason, in parentheses, is
  required and is reported.
- `<!-- docs-test: worker -->`: a worker has been running (the page has the reader start
  `manage.py durable_worker`): before the block, and while it runs, the harness drives
  every running execution in-process with `run_workflow`'s inline engine, timers
  fast-forwarded, until the block has ended and nothing moves any more. Use it on a block
  that waits for executions (`wait_workflow`) or reads what a worker did.

Any other `docs-test` comment is an error, so that a typo cannot skip a block unnoticed.
A block's first line may name the file it belongs to (`# shop/durable_activities.py`,
`# settings.py`); see `tests/docs/harness.py` for what the harness does with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
SKIP = re.compile(r"^skip\s*\((?P<reason>.*)\)$")
FILE_HEADER = re.compile(r"^#\s*(?P<path>(?:[\w.-]+/)*[\w-]+\.py)\b")
PYTHON_LANGUAGES = {"python", "py"}


class MarkerError(ValueError):
    """A `docs-test` comment the harness does not understand, or in the wrong place."""


@dataclass(frozen=True)
class Block:
    """One Python code block of a page."""

    page: Path
    line: int
    """The line of the page on which the code starts (1-based), for error messages."""
    code: str
    skip: str | None = None
    """The reason given by a `docs-test: skip (...)` marker."""
    worker: bool = False
    """A `docs-test: worker` marker: a worker stand-in runs while the block runs."""

    @property
    def file(self) -> str | None:
        """The file named by the block's first line (`shop/durable_activities.py`), if any."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        match = FILE_HEADER.match(first)
        return match["path"] if match else None

    @property
    def where(self) -> str:
        return f"{page_name(self.page)}:{self.line}"


def page_name(page: Path) -> str:
    """The page's path under docs/ (`concepts/determinism.md`), or its name elsewhere."""
    parts = page.parts
    if "docs" not in parts:
        return page.name
    last_docs = len(parts) - 1 - parts[::-1].index("docs")
    return "/".join(parts[last_docs + 1 :])


def _fences(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """(opening line index, closing line index, indent, language) of every fenced block."""
    fences = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        ticks = opening["ticks"]
        language = opening["info"].strip().split(" ", 1)[0].strip("{}.").lower()
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
                and not closing["info"].strip()
            ):
                break
            end += 1
        fences.append((index, end, opening["indent"], language))
        index = end + 1
    return fences


def _marker_above(lines: list[str], fence_index: int) -> tuple[int, str] | None:
    """(line index, body) of the `docs-test` comment just above a fence, if any."""
    index = fence_index - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    match = MARKER.match(lines[index]) if index >= 0 else None
    return (index, match["body"]) if match else None


def _options(body: str, page: Path, line: int) -> dict:
    if body == "worker":
        return {"worker": True}
    skip = SKIP.match(body)
    if skip and skip["reason"].strip():
        return {"skip": skip["reason"].strip()}
    raise MarkerError(
        f"{page_name(page)}:{line}: unknown marker <!-- docs-test: {body} -->; use "
        f"'skip (reason)' or 'worker'."
    )


def python_blocks(page: Path) -> list[Block]:
    """Every Python block of `page`, in page order, with its marker applied.

    Raises:
        MarkerError: a `docs-test` comment that is malformed, or not right above a Python
            block.
    """
    lines = page.read_text(encoding="utf-8").split("\n")
    fences = _fences(lines)
    inside = {index for start, end, _, _ in fences for index in range(start, end + 1)}
    blocks: list[Block] = []
    markers_used: set[int] = set()
    for start, end, indent, language in fences:
        if language not in PYTHON_LANGUAGES:
            continue
        options = {}
        marker = _marker_above(lines, start)
        if marker is not None:
            markers_used.add(marker[0])
            options = _options(marker[1], page, marker[0] + 1)
        code = "\n".join(
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[start + 1 : end]
        )
        blocks.append(Block(page, start + 2, code, **options))
    for index, line in enumerate(lines):
        if index not in inside and index not in markers_used and MARKER.match(line):
            raise MarkerError(
                f"{page_name(page)}:{index + 1}: a docs-test marker must be right above a "
                f"```python block."
            )
    return blocks
