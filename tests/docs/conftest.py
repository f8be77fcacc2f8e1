"""Reports, at the end of the run, how many blocks of each page ran and were skipped."""

import pytest

PROPERTY = "docs_blocks"


@pytest.fixture
def report_blocks(record_property):
    """Record a page's `PageReport` summary on its test (travels to the xdist controller)."""

    def record(report) -> None:
        record_property(PROPERTY, report.summary())

    return record


def pytest_terminal_summary(terminalreporter):
    summaries = sorted(
        value
        for report in terminalreporter.stats.get("passed", [])
        for name, value in getattr(report, "user_properties", [])
        if name == PROPERTY
    )
    if summaries:
        terminalreporter.write_sep("-", "documentation examples")
        for line in summaries:
            terminalreporter.write_line(line)
