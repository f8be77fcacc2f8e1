"""Every Python block of the documentation runs, page by page, against the test project.

A page's blocks run in page order: `tests/docs/harness.py` says where each runs (a module of
an app, a settings snippet, or a shell), `tests/docs/blocks.py` the markers a block may carry
(`<!-- docs-test: skip (reason) -->`, `<!-- docs-test: worker -->`). An unmarked block that
raises fails its page's test, with the page and line. Every page under docs/ with a Python
block is run, but those in `NOT_RUN`; the run ends with a count of the blocks run and
skipped per page.
"""

from pathlib import Path

import pytest

from .blocks import python_blocks
from .harness import PageRun

DOCS = Path(__file__).resolve().parents[2] / "docs"

NOT_RUN = {
    "pgbouncer.md": "settings of a deployment: database hosts and passwords from the environment",
}
"""Pages whose Python blocks only show settings or deployment files, with the reason."""

AWAITING_FIXES: dict[str, str] = {}
"""Pages of other authors whose examples fail as written, with the fix; strict, so that a
page passing again fails here until its entry is removed."""


def pages_with_examples() -> list[Path]:
    return [
        page
        for page in sorted(DOCS.rglob("*.md"))
        if str(page.relative_to(DOCS)) not in NOT_RUN and python_blocks(page)
    ]


def page_param(page: Path):
    name = str(page.relative_to(DOCS))
    marks = []
    if name in AWAITING_FIXES:
        marks.append(pytest.mark.xfail(reason=AWAITING_FIXES[name], strict=True))
    return pytest.param(page, id=name, marks=marks)


def test_pages_not_run_exist():
    """A page listed here still exists (else the list hides nothing, and rots)."""
    listed = [*NOT_RUN, *AWAITING_FIXES]
    assert [name for name in listed if not (DOCS / name).exists()] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", [page_param(page) for page in pages_with_examples()])
def test_page_examples_run(page, tmp_path, report_blocks):
    report = PageRun(page, python_blocks(page), tmp_path).run()
    report_blocks(report)
    assert report.ran or report.skipped
