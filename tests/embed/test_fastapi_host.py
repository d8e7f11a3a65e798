"""Tandem mounted at /collab in a FastAPI app, started by the host's lifespan, on the embedded
Redis: the host's own route still answers; the Python client, HTTP and the editor page in
Chromium all reach Tandem under the prefix, and converge."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.server.client import TandemClient
from tandem.testing.chromium import CHROMIUM_ARGS, find_chromium
from tests.embed.hosts import HostServer, fastapi_host, settings_for
from tests.support import run, unique_doc
from tests.web.conftest import _missing as missing
from tests.web.pages import WAIT_MS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="module")
def host(data_dir: Path) -> Iterator[HostServer]:
    # no Redis URL: Tandem starts its embedded redis-server, its data in data_dir
    app, _ = fastapi_host(settings_for(None, data_dir))
    with HostServer(app) as server:
        yield server


def test_the_hosts_own_route_and_tandems_routes_answer_side_by_side(host: HostServer, data_dir: Path) -> None:
    with httpx.Client(base_url=host.http_url, timeout=5) as http:
        assert http.get("/hello").json() == {"host": "fastapi"}
        page = http.get("/collab/")
        assert page.status_code == 200 and 'src="web/main.js"' in page.text
        assert http.get("/collab", follow_redirects=True).url.path == "/collab/"
        assert http.get("/collab/web/main.js").status_code == 200
        assert http.get("/collab/healthz").json()["redis"] is True
        assert http.get("/web/main.js").status_code == 404  # nothing of Tandem outside its prefix
    # the embedded Redis keeps its data where the settings say
    assert any(data_dir.iterdir())


def test_python_client_and_http_under_the_prefix(host: HostServer) -> None:
    doc = unique_doc("embed")
    url = f"{host.ws_url}/collab/ws/{doc}"

    async def scenario() -> tuple[str, str]:
        async with TandemClient(url) as one, TandemClient(url) as two:
            one.insert(0, "hello")
            await one.synced()
            await two.wait_for(lambda c: c.text == "hello")
            async with httpx.AsyncClient(base_url=f"{host.http_url}/collab") as http:
                got = (await http.get(f"/docs/{doc}")).json()
                assert got["text"] == "hello"
                body = {
                    "client": "http-1",
                    "seq": 1,
                    "base": got["rev"],
                    "ops": [{"type": "Retain", "length": 5}, {"type": "Insert", "content": " world"}],
                }
                ack = await http.post(f"/docs/{doc}/ops", content=json.dumps(body))
                assert ack.status_code == 200, ack.text
                await one.wait_for(lambda c: c.text == "hello world")
                await two.wait_for(lambda c: c.text == "hello world")
                ops = (await http.get(f"/docs/{doc}/ops")).json()
                assert [op["rev"] for op in ops["ops"]] == [1, 2]
                verified = (await http.get(f"/docs/{doc}/verify")).json()
                assert verified["ok"], verified
            return one.text, two.text

    assert run(scenario()) == ("hello world", "hello world")


class ThreadClient:
    """A Python client in a thread of its own (Playwright's sync API owns this thread's loop):
    types ``typed`` one character at a time at the end, then holds on until told to finish and
    reports where it ended."""

    def __init__(self, url: str, typed: str) -> None:
        self.url, self.typed = url, typed
        self.typed_all = threading.Event()
        self.finish_at: int | None = None
        self.finish = threading.Event()
        self.result: tuple[int | None, str] | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(asyncio.wait_for(self._run(), 30))
        except BaseException as e:  # reported by join()
            self.failure = e
            self.typed_all.set()

    async def _run(self) -> None:
        async with TandemClient(self.url) as client:
            for ch in self.typed:
                client.insert(len(client.text), ch)
                await asyncio.sleep(0.03)
            await client.synced()
            self.typed_all.set()
            while not self.finish.is_set():
                await asyncio.sleep(0.02)
            target = self.finish_at
            await client.wait_for(lambda c: target is None or c.rev == target)
            self.result = (client.rev, client.text)

    def join(self) -> tuple[int | None, str]:
        self.thread.join(timeout=30)
        if self.failure is not None:
            raise self.failure
        assert self.result is not None
        return self.result


def in_thread(work: Callable[[], None], timeout: float = 60) -> None:
    """Run ``work`` in a thread of its own and re-raise what it raised. Playwright's sync API
    keeps an event loop in the thread that starts it: in this one it would break every later
    test that runs asyncio (tests/web starts its browser last for the same reason)."""
    failure: list[BaseException] = []

    def main() -> None:
        try:
            work()
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the browser part did not finish within {timeout} s"
    if failure:
        raise failure[0]


@pytest.mark.browser
def test_the_editor_page_under_the_prefix_converges_with_the_python_client(host: HostServer) -> None:
    chromium = find_chromium()
    if chromium is None:
        missing("no Chromium found (looked at TANDEM_CHROMIUM, /usr/bin/chromium and PATH)")
    doc = unique_doc("embed-page")
    python = ThreadClient(f"{host.ws_url}/collab/ws/{doc}", "0123456789")
    seen: dict[str, Any] = {}

    def drive_the_page() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT_MS)
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{host.http_url}/collab/?doc={doc}")
                page.wait_for_function(
                    "() => window.tandem && window.tandem.state === 'connected' && window.tandem.rev !== null"
                )
                page.click("#editor")
                python.thread.start()
                page.keyboard.type("abcdefghij", delay=25)  # while the Python client types too
                assert python.typed_all.wait(20)
                page.wait_for_function("() => window.tandem.synced")
                server = httpx.get(f"{host.http_url}/collab/docs/{doc}").json()
                page.wait_for_function(f"() => window.tandem.synced && window.tandem.rev === {server['rev']}")
                seen.update(server=server, text=page.evaluate("window.tandem.text"), errors=errors)
            finally:
                browser.close()

    in_thread(drive_the_page)
    server = seen["server"]
    python.finish_at = server["rev"]
    python.finish.set()
    rev, text = python.join()
    assert rev == server["rev"] and text == server["text"] == seen["text"]
    assert sorted(text) == sorted("abcdefghij0123456789")
    assert seen["errors"] == []
