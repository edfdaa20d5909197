"""Browser tests: Debian's chromium, driven by the Python Playwright package, against the live server.

No browser is downloaded: the tests use /usr/bin/chromium, which `make install-system` installs
(compose/local/install-system.sh --browser). Without it they skip, except on CI, where they must run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Page, sync_playwright

# The real bridge + worker + callback receiver of the integration layer, reused as they are.
from tests.integration.conftest import Pipeline, pipeline  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    """A fresh chromium page (1440x900); closed, with its browser, when the test ends."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run `bash compose/local/install-system.sh --browser` (as root)"
        if _on_ci():
            pytest.fail(f"CI is set and {message}")
        pytest.skip(message)

    # Playwright's sync API runs an event loop in this thread, so Django would refuse the test's own
    # ORM calls as "async context" ones; they are plain synchronous calls between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            # The test's ORM calls under the running loop opened their own database connection:
            # close it here, or the test database cannot be dropped at the end of the session.
            connections.close_all()
            browser.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, page: Page) -> Callable[[str], Path]:
    """screenshot("step") saves tests/browser/artifacts/<test>-<step>.png and prints its path."""

    def take(step: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{request.node.name}-{step}")
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")  # noqa: T201 - the artifact's path, for whoever reads the log
        return path

    return take
