"""Editor pages under test: open them, read their state through `window.tandem`, and wait
on that state instead of sleeping."""

from __future__ import annotations

import json
from typing import Any

from tests.support import ServerProcess, document, http_post, unique_doc

# Generous: a restarted server plus reconnect backoff must fit, and CI machines are slow.
WAIT_MS = 20_000


def post_op(server: ServerProcess, doc: str, body: dict[str, Any]) -> dict[str, Any]:
    """Submit an op over HTTP, as a client without a socket does; returns the ack."""
    status, answer = http_post(f"{server.http_url}/docs/{doc}/ops", json.dumps(body).encode())
    assert status == 200, f"POST /docs/{doc}/ops answered {status}: {answer[:300]!r}"
    ack: dict[str, Any] = json.loads(answer)
    return ack


class Editor:
    """One page showing the editor, in its own browser context."""

    def __init__(self, context: Any, page: Any, server: ServerProcess, doc: str) -> None:
        self.context = context
        self.page = page
        self.server = server
        self.doc = doc
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def state(self, name: str) -> Any:
        return self.page.evaluate(f"window.tandem.{name}")

    @property
    def text(self) -> str:
        return self.state("text")  # type: ignore[no-any-return]

    def wait(self, condition: str, arg: Any = None) -> None:
        """Wait until the JavaScript expression ``condition`` (over ``t`` = window.tandem) holds."""
        self.page.wait_for_function(
            f"(arg) => {{ const t = window.tandem; return !!t && ({condition}); }}", arg=arg, timeout=WAIT_MS
        )

    def wait_synced(self, rev: int | None = None) -> None:
        """Connected, nothing awaiting acknowledgment, and at ``rev`` when given."""
        self.wait("t.synced && (arg === null || t.rev === arg)", rev)

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)

    def caret(self) -> dict[str, Any]:
        """The textarea's selection in UTF-16 units, as the browser reports it."""
        caret: dict[str, Any] = self.page.evaluate(
            "() => { const e = document.getElementById('editor');"
            " return {start: e.selectionStart, end: e.selectionEnd, value: e.value,"
            " selected: e.value.slice(e.selectionStart, e.selectionEnd)}; }"
        )
        return caret


class Editors:
    """Editor pages, by default on `server`; closes what it opened."""

    def __init__(self, browser: Any, server: ServerProcess) -> None:
        self.browser = browser
        self.server = server
        self.opened: list[Editor] = []

    def open(
        self,
        doc: str | None = None,
        *,
        server: ServerProcess | None = None,
        viewport: dict[str, int] | None = None,
        before_load: Any = None,
    ) -> Editor:
        doc = doc or unique_doc("web")
        server = server or self.server
        context = self.browser.new_context(viewport=viewport or {"width": 900, "height": 600})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        editor = Editor(context, page, server, doc)
        if before_load is not None:
            before_load(editor)
        page.goto(f"{server.http_url}/?doc={doc}")
        editor.wait("t.state === 'connected' && t.rev !== null")
        page.click("#editor")
        self.opened.append(editor)
        return editor

    def converged(self, *editors: Editor) -> str:
        """Wait until every editor is synced at the server's revision; returns the common text."""
        server, doc_id = editors[0].server, editors[0].doc
        for _ in range(3):  # the server may commit more while we look: look again
            rev = document(server.http_url, doc_id)["rev"]
            for editor in editors:
                editor.wait("t.pending === 0 && t.state === 'connected' && t.rev >= arg", rev)
            doc = document(server.http_url, doc_id)
            if all(e.state("rev") == doc["rev"] for e in editors):
                for editor in editors:
                    assert editor.text == doc["text"], (
                        f"page text differs from the server's at rev {doc['rev']}:\n"
                        f"page:   {editor.text!r}\nserver: {doc['text']!r}"
                    )
                    assert editor.errors == [], f"errors on the page: {editor.errors}"
                return doc["text"]  # type: ignore[no-any-return]
        raise AssertionError("the pages never settled at one revision with the server")

    def close(self) -> None:
        for editor in self.opened:
            editor.context.close()


HOSTILE_NAME = '<img src="/seen-img">Mallory'


def relay_hostile_presence(page: Editor, server_url: str) -> list[str]:
    """Hand ``page``'s client a presence (as if a server relayed it) whose name is markup and
    whose colour is a `url(...)` of the test server; the URLs the page requests from then on."""
    requested: list[str] = []
    page.page.on("request", lambda request: requested.append(request.url))
    evil: dict[str, Any] = {
        "type": "presence",
        "client": "mallory",
        "rev": page.state("rev"),
        "cursor": {"anchor": 1, "head": 3},
        "user": {"name": HOSTILE_NAME, "color": f"url({server_url}/seen-{page.doc})"},
    }
    page.page.evaluate("(frame) => window.tandem.client.handleFrame(frame)", json.dumps(evil))
    return requested
