"""MkDocs hooks: links from a page to repository files outside docs/ keep working on the site.

A page may link to a file of the repository (`[compose.yaml](../deploy/compose.yaml)`), which
works on GitHub. The site holds only docs/, so this hook copies each such file into the site
under `repo/` (a folder gets a small index of its files) and points the link there. Links
to files that do not exist are left alone, for MkDocs to report.
"""

from __future__ import annotations

import html
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

LINK = re.compile(r"(?P<head>\]\()(?P<target>\.\./[^)\s#]+)(?P<anchor>#[^)\s]*)?(?P<tail>\))")
SITE_FOLDER = "repo"


def _repository(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _outside_target(page_src: str, target: str, config) -> Path | None:
    """The repository path a page's link points to, if it leaves docs/ and exists."""
    docs = Path(config.docs_dir).resolve()
    resolved = (docs / posixpath.dirname(page_src) / target).resolve()
    repository = _repository(config)
    if resolved.is_relative_to(docs) or not resolved.is_relative_to(repository):
        return None
    return resolved if resolved.exists() else None


def _site_uri(path: Path, config) -> str:
    relative = path.relative_to(_repository(config)).as_posix()
    return f"{SITE_FOLDER}/{relative}/index.html" if path.is_dir() else f"{SITE_FOLDER}/{relative}"


def _folder_index(folder: Path, config) -> str:
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    title = html.escape(folder.relative_to(_repository(config)).as_posix() + "/")
    items = "".join(
        f'<li><a href="{html.escape(name)}">{html.escape(name)}</a></li>' for name in names
    )
    return f"<!doctype html><title>{title}</title><h1>{title}</h1><ul>{items}</ul>\n"


def on_files(files: Files, config) -> Files:
    """Add the repository files that pages link to, under `repo/`."""
    targets: set[Path] = set()
    for page in files.documentation_pages():
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for match in LINK.finditer(text):
            target = _outside_target(page.src_uri, match["target"], config)
            if target is not None:
                targets.add(target)
    for target in sorted(targets):
        if target.is_dir():
            for entry in sorted(target.iterdir()):
                if entry.is_file():
                    _add(files, entry, config)
            files.append(
                File.generated(
                    config, _site_uri(target, config), content=_folder_index(target, config)
                )
            )
        else:
            _add(files, target, config)
    return files


def _add(files: Files, path: Path, config) -> None:
    uri = _site_uri(path, config)
    if files.get_file_from_path(uri) is None:
        files.append(File.generated(config, uri, abs_src_path=str(path)))


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Point links to repository files at their copies under `repo/`."""

    def rewrite(match: re.Match) -> str:
        target = _outside_target(page.file.src_uri, match["target"], config)
        if target is None:
            return match[0]
        uri = _site_uri(target, config)
        relative = posixpath.relpath(uri, posixpath.dirname(page.file.src_uri) or ".")
        return f"{match['head']}{relative}{match['anchor'] or ''}{match['tail']}"

    return LINK.sub(rewrite, markdown)
