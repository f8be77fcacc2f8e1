"""The browser ring: the admin console in headless Chromium, served by a live server, with a
real worker process running what the operator starts.

Chromium comes from Debian (`/usr/bin/chromium`, which .ci/run installs) and Playwright
drives it; `playwright install` is never needed. Outside CI, a machine without them skips
this ring; in CI (env `CI` set) their absence fails it, so a green CI always ran it.
"""

import os
from pathlib import Path

import django.contrib.admin
import pytest

from tests.acceptance.conftest import start_worker, worker_env  # noqa: F401  (fixtures)
from tests.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "images"  # where docs/admin.md takes them from
VIEWPORT = {"width": 1440, "height": 900}
ADMIN_STATIC = Path(django.contrib.admin.__file__).parent / "static"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser ring (.ci/run installs chromium).")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def browser_available() -> None:
    """Checked first, before a server or worker starts for nothing."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")


@pytest.fixture
def console(request, settings, transactional_db):
    """The live server's URL, serving the admin's own CSS and JavaScript as a project does.

    The test settings have no STATIC_URL: the live server's static files handler, made
    when the session's live server starts, then fails every request (and the pages would
    be unstyled anyway). So it is set here, before `live_server` is first requested.
    """
    settings.STATIC_URL = "/static/"
    settings.STATIC_ROOT = str(ADMIN_STATIC)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    return request.getfixturevalue("live_server").url


@pytest.fixture
def page(console):
    """A Chromium page 1440 pixels wide, closed with its browser after the test.

    While the browser is open, Playwright's sync API keeps its (idle) event loop marked as
    running in this thread, so Django refuses the thread's queries as if they came from
    async code: a test makes its own queries in fixtures set up before this one.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshot(page):
    """Save the page (whole, by default) as docs/images/admin-<name>.png."""

    def save(name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"admin-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save
