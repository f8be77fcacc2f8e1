"""What keeps the site and the README in step with the code (no database, no MkDocs)."""

import importlib
import re
from pathlib import Path

import pytest

import django_durable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)\s*$", re.MULTILINE)


def first_paragraph(path: Path) -> str:
    """The first paragraph after the page's title, as one line."""
    paragraphs = path.read_text(encoding="utf-8").split("\n\n")
    return " ".join(paragraphs[1].split())


def test_readme_links_reach_files_of_the_repository():
    """GitHub renders README.md: each relative link (docs/*.md mostly) must exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [m["target"].split("#", 1)[0] for m in LINK.finditer(text)]
    relative = [target for target in targets if target and "://" not in target]
    assert relative, "README.md links into docs/"
    assert [target for target in relative if not (ROOT / target).exists()] == []


def test_the_home_page_starts_with_the_readme_pitch():
    assert first_paragraph(DOCS / "index.md") == first_paragraph(ROOT / "README.md")


def test_every_public_name_is_in_the_api_reference():
    """Each name of `django_durable.__all__` is documented: as a `::: path` of its own, or as
    a member of a module documented whole (the exceptions)."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in (DOCS / "reference").glob("*.md"))
    paths = [match["path"] for match in DIRECTIVE.finditer(text)]
    modules = [importlib.import_module(path) for path in paths if _is_module(path)]

    def documented(name: str) -> bool:
        if name == "activity":  # the module: its functions are documented one by one
            return "django_durable.activity.info" in paths
        if any(path.rsplit(".", 1)[-1] == name for path in paths):
            return True
        return any(name in vars(module) for module in modules)

    assert [name for name in django_durable.__all__ if not documented(name)] == []


def _is_module(path: str) -> bool:
    try:
        importlib.import_module(path)
    except ImportError:
        return False
    return True


def test_the_tutorial_keeps_the_product_tutorial_and_adds_to_it():
    """docs/tutorial.md holds every line of shared/TUTORIAL.md, in order; what it adds (the
    `async def` style, the markers that let its blocks run) comes between them."""
    shared = ROOT.parent / "shared" / "TUTORIAL.md"
    if not shared.exists():
        pytest.skip("shared/TUTORIAL.md is not beside the repository")
    lines = iter((DOCS / "tutorial.md").read_text(encoding="utf-8").split("\n"))
    missing = [
        line
        for line in shared.read_text(encoding="utf-8").split("\n")
        if not any(line == ours for ours in lines)
    ]
    assert missing == []
