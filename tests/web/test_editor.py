"""The editor page in a real Chromium against a real server: convergence, crashes,
offline editing, caret stability and undo."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ServerProcess, assert_verified
from tests.web.pages import Editor, Editors, post_op

pytestmark = pytest.mark.browser


def _subsequence(text: str, alphabet: str) -> str:
    return "".join(ch for ch in text if ch in alphabet)


def test_two_pages_typing_at_once_converge_to_the_servers_text(editors: Editors) -> None:
    one = editors.open()
    two = editors.open(one.doc)
    # Keystrokes alternate without waiting for acks, so both pages edit at the same place
    # (the end) on revisions the other has moved past; astral characters count as one
    # position each. For the second half each page also holds back what it receives, so
    # the two are certainly concurrent: every op of each is transformed against the other's.
    typed_one = "ab😀cd😀ef😀gh"
    typed_two = "XY🎉ZW🎉VU🎉TS"
    for i, (a, b) in enumerate(zip(typed_one, typed_two, strict=True)):
        if i == len(typed_one) // 2:
            for page in (one, two):
                page.page.evaluate("window.tandem.client.hold()")
        one.type(a)
        two.type(b)
    for page in (one, two):
        page.page.evaluate("window.tandem.client.release()")
    text = editors.converged(one, two)
    assert len(text) == len(typed_one) + len(typed_two)
    assert _subsequence(text, "abcdefgh😀") == typed_one
    assert _subsequence(text, "XYZWVUTS🎉") == typed_two


def test_every_keystroke_survives_a_server_crash_exactly_once(
    editors: Editors, own_server: ServerProcess
) -> None:
    page = editors.open(server=own_server)
    tokens = [f"<{i:02d}>" for i in range(24)]
    for token in tokens[:8]:
        page.type(token)
    own_server.kill()  # kill -9: no goodbye, the socket just dies
    page.wait("t.state !== 'connected'")
    for token in tokens[8:16]:
        page.type(token)  # kept and composed while the server is down
    assert page.state("pending") > 0
    own_server.start()
    for token in tokens[16:]:
        page.type(token)
    text = editors.converged(page)
    assert text == "".join(tokens), f"lost or repeated keystrokes: {text!r}"
    assert_verified(own_server.http_url, page.doc)


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


def test_others_cursors_and_selections_are_drawn_in_their_colours_with_names(editors: Editors) -> None:
    ada = editors.open()
    grace = editors.open(ada.doc)
    ada.page.fill("#name", "Ada")
    ada.page.press("#name", "Enter")
    ada.page.click("#editor")
    ada.type("hi 😀 hello world")
    editors.converged(ada, grace)
    ada.page.evaluate(
        "(() => { const e = document.getElementById('editor'); const i = e.value.indexOf('world');"
        " e.setSelectionRange(i, i + 5, 'forward'); })()"
    )
    grace.wait(
        "Object.values(t.peers).some(({cursor: c, user: u}) => u && u.name === 'Ada' && c.anchor !== c.head)"
    )
    drawn = grace.page.evaluate(
        """() => {
            const layer = document.querySelector('.presence-layer');
            const caret = layer.querySelector('.peer-caret');
            const before = document.createRange();
            before.setStart(layer, 0);
            before.setEndBefore(caret);
            return {
                selected: [...layer.querySelectorAll('.peer-selection')].map((e) => e.textContent).join(''),
                name: caret.querySelector('.peer-name').textContent,
                textBeforeCaret: before.toString(),
                colour: getComputedStyle(caret).getPropertyValue('--peer-color').trim(),
            };
        }"""
    )
    ada_colour = ada.page.evaluate("JSON.parse(localStorage.getItem('tandem.user')).color")
    assert drawn == {
        "selected": "world",
        "name": "Ada",
        "textBeforeCaret": "hi 😀 hello world",
        "colour": ada_colour,
    }


def test_line_breaks_written_elsewhere_as_crlf_survive_editing_in_the_page(editors: Editors) -> None:
    page = editors.open()
    # a client on another platform writes Windows line breaks, which a textarea cannot hold
    post_op(
        editors.server,
        page.doc,
        {"client": "bot", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "one\r\ntwo\r\n"}]},
    )
    page.wait("t.text === arg", "one\r\ntwo\r\n")
    assert page.caret()["value"] == "one\ntwo\n"
    page.page.keyboard.press("Control+End")
    page.type("three 😀")
    page.page.evaluate("document.getElementById('editor').setSelectionRange(3, 3)")
    page.page.keyboard.press("Delete")  # joins the first two lines: removes the whole \r\n
    assert editors.converged(page) == "onetwo\r\nthree 😀"


def test_remote_edits_wait_while_an_input_method_composes(editors: Editors) -> None:
    composer = editors.open()
    other = editors.open(composer.doc)
    composer.type("hello ")
    editors.converged(composer, other)
    ime = composer.context.new_cdp_session(composer.page)
    ime.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    other.page.keyboard.press("Control+Home")
    other.type("XY")
    other.wait_synced()
    # the composition is untouched: the remote insert is held back, not applied under it
    assert composer.caret()["value"] == "hello ni"
    ime.send("Input.insertText", {"text": "你好"})
    assert editors.converged(composer, other) == "XYhello 你好"


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


def test_the_page_names_a_fresh_document_and_remembers_its_user(editors: Editors, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{editors.server.http_url}/")
        page.wait_for_function("window.tandem && window.tandem.state === 'connected'")
        doc = page.evaluate("new URL(location.href).searchParams.get('doc')")
        assert doc and doc == page.evaluate("window.tandem.doc"), "no fresh ?doc= in the address bar"
        assert page.input_value("#name"), "no name chosen for a new user"
        page.fill("#name", "Hopper")
        page.press("#name", "Enter")
        page.reload()
        page.wait_for_function("window.tandem && window.tandem.state === 'connected'")
        assert page.input_value("#name") == "Hopper", "the name did not survive a reload"
        other = editors.open(doc)
        other.wait("Object.values(t.peers).some((p) => p.user && p.user.name === 'Hopper')")
        assert "2 people here" in page.inner_text("#status")
    finally:
        context.close()
