"""Fixtures of the browser tests: Debian's Chromium driven by Playwright.

Playwright cannot download its own browsers here, so the tests launch a system Chromium
(docs/web-client.md, "Tests"). Without one they skip locally; under CI (CI=true) a missing
browser fails, so the browser tests can never silently stop running.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.testing.chromium import CHROMIUM_ARGS, find_chromium
from tests.support import RedisProcess, ServerProcess
from tests.web.pages import Editors

ROOT = Path(__file__).resolve().parents[2]
# A made-up origin whose requests are answered from the repository by page.route.
STATIC_ORIGIN = "http://tandem.test"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run; .ci/run installs Debian's chromium)")
    pytest.skip(f"{reason}; install Debian's chromium or set TANDEM_CHROMIUM to run the browser tests")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the browser tests, stopped when they are done: Playwright's sync
    API keeps an event loop running in this thread, and asyncio.run() in tests after would fail."""
    path = find_chromium()
    if path is None:
        _missing("no Chromium found (looked at TANDEM_CHROMIUM, /usr/bin/chromium and PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def static_page(browser: Any) -> Iterator[Any]:
    """A page on STATIC_ORIGIN, where /<path> is the repository file <path> (for the JS tests)."""
    context = browser.new_context()
    page = context.new_page()

    def serve(route: Any) -> None:
        relative = route.request.url[len(STATIC_ORIGIN) + 1 :].split("?")[0]
        path = (ROOT / relative).resolve()
        if ROOT not in path.parents or not path.is_file():
            route.fulfill(status=404, body=f"no such file: {relative}")
            return
        kind = "text/javascript" if path.suffix == ".js" else mimetypes.guess_type(path.name)[0]
        route.fulfill(status=200, body=path.read_bytes(), content_type=kind or "application/octet-stream")

    page.route(f"{STATIC_ORIGIN}/**", serve)
    page.goto(f"{STATIC_ORIGIN}/tests/web/blank.html")
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def editors(browser: Any, tandem: ServerProcess) -> Iterator[Editors]:
    """Opens editor pages on the session's server, each in its own browser context (own
    storage, own user)."""
    opened = Editors(browser, tandem)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def own_server(redis: RedisProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    """A `tandem serve` of this test alone, on the session's Redis, to kill and restart."""
    server = ServerProcess(redis.url, tmp_path / "tandem", extra_args=("--log-level", "warning"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
