"""Reading a page's Python blocks and their `docs-test` markers (no database)."""

from textwrap import dedent

import pytest

from .blocks import MarkerError, python_blocks


def page(tmp_path, text: str):
    path = tmp_path / "page.md"
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_blocks_come_in_page_order_with_their_first_code_line(tmp_path):
    blocks = python_blocks(
        page(
            tmp_path,
            """
            # Title

            ```python
            a = 1
            ```

            ```bash
            echo not python
            ```

            ```py
            b = 2
            ```
            """,
        )
    )
    assert [(block.line, block.code) for block in blocks] == [(4, "a = 1"), (12, "b = 2")]


def test_a_block_in_content_tabs_is_dedented(tmp_path):
    (block,) = python_blocks(
        page(
            tmp_path,
            """
            === "async def"

                ```python
                if True:
                    x = 1
                ```
            """,
        )
    )
    assert block.code == "if True:\n    x = 1"


def test_the_first_line_names_the_file(tmp_path):
    first, second, third = python_blocks(
        page(
            tmp_path,
            """
            ```python
            # shop/durable_workflows.py
            ```

            ```python
            # settings.py (or an AppConfig.ready())
            ```

            ```python
            # a comment, not a file
            ```
            """,
        )
    )
    assert (first.file, second.file, third.file) == (
        "shop/durable_workflows.py",
        "settings.py",
        None,
    )


def test_markers_skip_with_a_reason_or_ask_for_a_worker(tmp_path):
    skipped, worked, plain = python_blocks(
        page(
            tmp_path,
            """
            <!-- docs-test: skip (needs a payment provider (sandbox)) -->
            ```python
            charge()
            ```

            <!-- docs-test: worker -->

            ```python
            wait()
            ```

            ```python
            run()
            ```
            """,
        )
    )
    assert (skipped.skip, skipped.worker) == ("needs a payment provider (sandbox)", False)
    assert (worked.skip, worked.worker) == (None, True)
    assert (plain.skip, plain.worker) == (None, False)


@pytest.mark.parametrize(
    "marker, message",
    [
        ("<!-- docs-test: skip -->", "page.md:1: unknown marker <!-- docs-test: skip -->"),
        ("<!-- docs-test: skip () -->", "page.md:1: unknown marker <!-- docs-test: skip () -->"),
        ("<!-- docs-test: skipp (typo) -->", "page.md:1: unknown marker"),
    ],
)
def test_a_malformed_marker_is_an_error_not_a_silent_run(tmp_path, marker, message):
    with pytest.raises(MarkerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        python_blocks(page(tmp_path, f"{marker}\n```python\nx = 1\n```\n"))


def test_a_marker_that_is_not_above_a_python_block_is_an_error(tmp_path):
    text = """
        <!-- docs-test: skip (shell) -->
        ```bash
        ls
        ```
        """
    with pytest.raises(MarkerError, match=r"page.md:1: a docs-test marker must be right above"):
        python_blocks(page(tmp_path, text))


def test_a_marker_shown_inside_a_code_block_is_text(tmp_path):
    blocks = python_blocks(
        page(
            tmp_path,
            """
            ```markdown
            <!-- docs-test: skip (an example of the syntax) -->
            ```
            """,
        )
    )
    assert blocks == []
