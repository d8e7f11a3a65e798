"""The editor page in a real Chromium against a real server: convergence, crashes,
offline editing, caret stability and undo."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.pages import Editor, Editors, server_doc

pytestmark = pytest.mark.browser


def _subsequence(text: str, alphabet: str) -> str:
    return "".join(ch for ch in text if ch in alphabet)


def test_two_pages_typing_at_once_converge_to_the_servers_text(editors: Editors) -> None:
    one = editors.open()
    two = editors.open(one.doc)
    # Keystrokes alternate without waiting for acks, so both pages edit on stale revisions
    # at the same place (the end), and astral characters count as one position each.
    typed_one = "ab😀cd😀ef😀gh"
    typed_two = "XY🎉ZW🎉VU🎉TS"
    for a, b in zip(typed_one, typed_two, strict=True):
        one.type(a)
        two.type(b)
    text = editors.converged(one, two)
    assert len(text) == len(typed_one) + len(typed_two)
    assert _subsequence(text, "abcdefgh😀") == typed_one
    assert _subsequence(text, "XYZWVUTS🎉") == typed_two


def test_every_keystroke_survives_a_server_crash_exactly_once(editors: Editors, deployment: Any) -> None:
    page = editors.open()
    tokens = [f"<{i:02d}>" for i in range(24)]
    for token in tokens[:8]:
        page.type(token)
    server = deployment.servers[0]
    server.kill()  # kill -9: no goodbye, the socket just dies
    page.wait("t.state !== 'connected'")
    for token in tokens[8:16]:
        page.type(token)  # kept and composed while the server is down
    assert page.state("pending") > 0
    server.start()
    for token in tokens[16:]:
        page.type(token)
    text = editors.converged(page)
    assert text == "".join(tokens), f"lost or repeated keystrokes: {text!r}"
    verify = server_doc(server, f"{page.doc}/verify")
    assert verify["ok"], verify


def _block_socket(editor: Editor) -> Any:
    """Route the page's WebSocket through a switch; returns the switch."""

    class Switch:
        blocked = False
        routes: list[Any] = []

        def handle(self, ws: Any) -> None:
            if self.blocked:
                ws.close(code=1006, reason="offline")
                return
            self.routes.append(ws)
            ws.connect_to_server()

        def go_offline(self) -> None:
            self.blocked = True
            editor.context.set_offline(True)
            for ws in self.routes:
                ws.close(code=1006, reason="offline")
            self.routes.clear()

        def go_online(self) -> None:
            self.blocked = False
            editor.context.set_offline(False)

    switch = Switch()
    editor.page.route_web_socket("**/ws/**", switch.handle)
    return switch


def test_a_page_offline_keeps_typing_and_merges_on_return(editors: Editors) -> None:
    switch: Any = None

    def route(editor: Editor) -> None:
        nonlocal switch
        switch = _block_socket(editor)

    away = editors.open(before_load=route)
    here = editors.open(away.doc)
    away.type("shared start. ")
    editors.converged(away, here)

    switch.go_offline()
    away.wait("t.state === 'offline'")
    away.type("written offline 😀")
    here.page.keyboard.press("Control+Home")
    here.type("meanwhile online. ")
    here.wait_synced()
    assert away.state("pending") > 0 and "written offline" not in here.text
    # leaving now would lose those edits: the page asks first (and we choose to stay)
    with away.page.expect_event("dialog") as asked:
        away.page.evaluate("setTimeout(() => location.reload(), 0)")
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()
    assert away.state("pending") > 0

    switch.go_online()
    text = editors.converged(away, here)
    assert "written offline 😀" in text and "meanwhile online. " in text and "shared start. " in text


def test_a_remote_edit_before_the_caret_keeps_it_on_the_same_character(editors: Editors) -> None:
    mine = editors.open()
    theirs = editors.open(mine.doc)
    mine.type("hello world")
    editors.converged(mine, theirs)
    mine.page.evaluate("document.getElementById('editor').setSelectionRange(6, 6)")  # before "w"
    mine.page.keyboard.press("Shift+ArrowRight")  # select the "w"; the caret sits after it

    theirs.page.keyboard.press("Control+Home")
    theirs.type("😀 new ")  # an astral character: 2 UTF-16 units, 1 code point
    editors.converged(mine, theirs)

    caret = mine.caret()
    assert caret["value"] == "😀 new hello world"
    assert caret["selected"] == "w", caret
    assert (caret["start"], caret["end"]) == (len("😀 new hello ") + 1, len("😀 new hello w") + 1)


def test_undo_removes_only_ones_own_edit(editors: Editors) -> None:
    mine = editors.open()
    theirs = editors.open(mine.doc)
    mine.type("mine")
    editors.converged(mine, theirs)
    theirs.page.keyboard.press("Control+Home")
    theirs.type("theirs 😀 ")  # before mine: the undo must move past it
    editors.converged(mine, theirs)

    mine.page.keyboard.press("Control+z")
    assert editors.converged(mine, theirs) == "theirs 😀 "
    mine.page.keyboard.press("Control+Shift+z")
    assert editors.converged(mine, theirs) == "theirs 😀 mine"
    theirs.page.keyboard.press("Control+z")  # their undo takes back theirs, not mine
    assert editors.converged(mine, theirs) == "mine"
