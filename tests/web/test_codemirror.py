"""The CodeMirror 6 page (web/cm.html, web/codemirror.js) in a real Chromium against a real
server: CodeMirror and textarea pages typing at once converge, undo takes back only one's own
edits, others' cursors are drawn safely, and the page needs nothing but the server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support import ServerProcess, unique_doc
from tests.web.conftest import ROOT, STATIC_ORIGIN
from tests.web.pages import HOSTILE_NAME, WAIT_MS, Editor, Editors, post_op, relay_hostile_presence

VENDOR = ROOT / "web" / "vendor"


def open_codemirror(editors: Editors, doc: str | None = None, *, before_load: Any = None) -> Editor:
    """A page of web/cm.html on `doc`, live, with the editor focused; CodeMirror's logged
    exceptions count as page errors."""
    doc = doc or unique_doc("cm")
    server: ServerProcess = editors.server
    context = editors.browser.new_context(viewport={"width": 900, "height": 600})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    editor = Editor(context, page, server, doc)

    def console_error(message: Any) -> None:
        if message.type == "error":
            editor.errors.append(message.text)

    page.on("console", console_error)
    editors.opened.append(editor)
    if before_load is not None:
        before_load(editor)
    page.goto(f"{server.http_url}/web/cm.html?doc={doc}")
    editor.wait("t.state === 'connected' && t.rev !== null")
    page.click(".cm-content")
    return editor


def converged(editors: Editors, *pages: Editor) -> str:
    """Editors.converged, and every CodeMirror page shows exactly the client's text."""
    text = editors.converged(*pages)
    for page in pages:
        if page.page.evaluate("'view' in window.tandem"):
            assert page.state("editorText") == text, "the CodeMirror view differs from its client's text"
    return text


def _subsequence(text: str, alphabet: str) -> str:
    return "".join(ch for ch in text if ch in alphabet)


@pytest.mark.browser
def test_two_codemirror_pages_and_a_textarea_typing_at_once_converge(editors: Editors) -> None:
    one = open_codemirror(editors)
    two = open_codemirror(editors, one.doc)
    plain = editors.open(one.doc)
    # Keystrokes interleave without waiting for acks; astral characters (emoji, a musical
    # symbol) are two UTF-16 units and one code point. For the second half every page holds
    # back what it receives, so all three are certainly concurrent.
    typed = {one: "ab😀cd𝄞ef😀gh", two: "XY🎉ZW🎉VU🎉TS", plain: "12👍34👍56👍78"}
    alphabets = {one: "abcdefgh😀𝄞", two: "XYZWVUTS🎉", plain: "12345678👍"}
    two.page.keyboard.press("Control+Home")
    for i in range(len(typed[one])):
        if i == len(typed[one]) // 2:
            for page in typed:
                page.page.evaluate("window.tandem.client.hold()")
        for page, text in typed.items():
            page.type(text[i])
        if i == 3:
            two.page.keyboard.press("Enter")  # a line break in the middle of it all
    for page in typed:
        page.page.evaluate("window.tandem.client.release()")
    text = converged(editors, one, two, plain)
    for page, keys in typed.items():
        assert _subsequence(text, alphabets[page]) == keys, text
    assert len(text) == sum(len(keys) for keys in typed.values()) + 1


@pytest.mark.browser
def test_undo_in_codemirror_takes_back_only_ones_own_edits(editors: Editors) -> None:
    mine = open_codemirror(editors)
    theirs = open_codemirror(editors, mine.doc)
    plain = editors.open(mine.doc)
    mine.type("mine")
    converged(editors, mine, theirs, plain)
    theirs.page.keyboard.press("Control+Home")
    theirs.type("theirs 😀 ")  # before mine: the undo must map past it
    plain.page.keyboard.press("Control+End")
    plain.type(" plain")
    converged(editors, mine, theirs, plain)
    # CodeMirror's history holds only the page's own edit, not the remote ones
    assert mine.page.evaluate("window.tandem.cm.undoDepth(window.tandem.view.state)") == 1

    mine.page.keyboard.press("Control+z")
    assert converged(editors, mine, theirs, plain) == "theirs 😀  plain"
    mine.page.keyboard.press("Control+Shift+z")
    assert converged(editors, mine, theirs, plain) == "theirs 😀 mine plain"
    theirs.page.keyboard.press("Control+z")  # their undo takes back theirs, not mine
    assert converged(editors, mine, theirs, plain) == "mine plain"
    theirs.page.keyboard.press("Control+z")  # and nothing more: the rest is not theirs
    assert converged(editors, mine, theirs, plain) == "mine plain"


@pytest.mark.browser
def test_a_remote_edit_keeps_the_selection_on_its_characters(editors: Editors) -> None:
    mine = open_codemirror(editors)
    theirs = editors.open(mine.doc)
    mine.type("hello world")
    converged(editors, mine, theirs)
    mine.page.evaluate("window.tandem.view.dispatch({selection: {anchor: 6, head: 7}})")  # the "w"
    theirs.page.keyboard.press("Control+Home")
    theirs.type("😀 new ")
    converged(editors, mine, theirs)
    selected = mine.page.evaluate(
        "(() => { const s = window.tandem.view.state; const r = s.selection.main;"
        " return s.sliceDoc(r.from, r.to); })()"
    )
    assert selected == "w"


@pytest.mark.browser
def test_others_cursors_are_drawn_with_names_and_colours_and_the_connection_shows(editors: Editors) -> None:
    ada = open_codemirror(editors)
    grace = open_codemirror(editors, ada.doc)
    ada.page.fill("#name", "Ada")
    ada.page.press("#name", "Enter")
    ada.page.click(".cm-content")
    ada.type("hi 😀 hello world")
    converged(editors, ada, grace)
    ada.page.evaluate(
        "(() => { const v = window.tandem.view; const i = v.state.doc.toString().indexOf('world');"
        " v.dispatch({selection: {anchor: i, head: i + 5}}); })()"
    )
    grace.wait(
        "Object.values(t.peers).some(({cursor: c, user: u}) => u && u.name === 'Ada' && c.anchor !== c.head)"
    )
    grace.page.wait_for_selector(".cm-tandem-selection")
    drawn = grace.page.evaluate(
        """() => {
            const caret = document.querySelector('.cm-tandem-caret');
            const line = caret.closest('.cm-line');
            const before = document.createRange();
            before.setStart(line, 0);
            before.setEndBefore(caret);
            return {
                selected: [...document.querySelectorAll('.cm-tandem-selection')]
                    .map((e) => e.textContent).join(''),
                name: caret.querySelector('.cm-tandem-name').textContent,
                textBeforeCaret: before.toString().replace('Ada', ''),
                colour: getComputedStyle(caret).getPropertyValue('--tandem-color').trim(),
                status: document.querySelector('.cm-tandem-status').textContent,
            };
        }"""
    )
    ada_colour = ada.page.evaluate("JSON.parse(localStorage.getItem('tandem.user')).color")
    assert drawn["selected"] == "world"
    assert drawn["name"] == "Ada"
    assert drawn["textBeforeCaret"] == "hi 😀 hello world"
    assert drawn["colour"] == ada_colour
    assert drawn["status"].startswith("connected · rev ") and "2 people here" in drawn["status"], drawn
    assert "Ada" in drawn["status"]


@pytest.mark.browser
def test_a_peers_markup_name_and_url_colour_reach_neither_the_dom_nor_the_network(editors: Editors) -> None:
    page = open_codemirror(editors)
    page.type("hello")
    page.wait_synced()
    requested = relay_hostile_presence(page, editors.server.http_url)
    page.page.wait_for_selector('.cm-tandem-caret[data-client="mallory"]')
    drawn = page.page.evaluate(
        """() => {
            const caret = document.querySelector('.cm-tandem-caret[data-client="mallory"]');
            const styles = [...document.querySelectorAll('.cm-content [style]')]
                .map((e) => e.getAttribute('style'));
            return {
                name: caret.querySelector('.cm-tandem-name').textContent,
                // CodeMirror's own spacers around widgets are <img> without src
                images: document.querySelectorAll('.cm-editor img[src], .cm-tandem-caret img').length,
                colour: getComputedStyle(caret).getPropertyValue('--tandem-color').trim(),
                urls: styles.filter((s) => s.includes('url(')),
                selected: document.querySelector('.cm-tandem-selection').textContent,
            };
        }"""
    )
    page.page.wait_for_timeout(300)  # time for any image or background request to go out
    assert drawn["name"] == HOSTILE_NAME
    assert drawn["images"] == 0 and drawn["urls"] == []
    assert re.fullmatch(r"#[0-9a-f]{6}", drawn["colour"]), drawn
    assert drawn["selected"] == "el"
    assert not [url for url in requested if "/seen" in url], requested
    assert page.errors == []


@pytest.mark.browser
def test_the_page_loads_the_vendored_bundle_and_nothing_from_elsewhere(editors: Editors) -> None:
    requests: list[str] = []
    outside: list[str] = []

    def watch(editor: Editor) -> None:
        def only_local(route: Any) -> None:
            url = route.request.url
            if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        editor.context.route("**/*", only_local)
        editor.page.on("request", lambda request: requests.append(request.url))
        editor.page.on("websocket", lambda ws: requests.append(ws.url))

    page = open_codemirror(editors, before_load=watch)
    page.type("offline-safe 😀")
    assert converged(editors, page) == "offline-safe 😀"
    assert outside == [], f"the page reached beyond the server: {outside}"
    paths = {urlsplit(url).path for url in requests}
    assert "/web/vendor/codemirror.js" in paths, sorted(paths)
    assert f"/ws/{page.doc}" in paths
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in requests if not url.startswith("data:")), (
        requests
    )


@pytest.mark.browser
def test_codemirror_keeps_carriage_returns_written_elsewhere(editors: Editors) -> None:
    page = open_codemirror(editors)
    post_op(
        editors.server,
        page.doc,
        {"client": "bot", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "one\r\ntwo\r\n"}]},
    )
    page.wait("t.text === arg", "one\r\ntwo\r\n")
    assert page.state("editorText") == "one\r\ntwo\r\n"
    page.page.keyboard.press("Control+End")
    page.type("three 😀")
    assert converged(editors, page) == "one\r\ntwo\r\nthree 😀"
    # and nothing of the remote text is in the page's undo history
    page.page.keyboard.press("Control+z")
    assert converged(editors, page) == "one\r\ntwo\r\n"
    page.page.keyboard.press("Control+z")
    assert converged(editors, page) == "one\r\ntwo\r\n"


# ------------------------------------------------------------ no browser needed


def _report_clean(report: dict[str, Any], where: str) -> None:
    assert report["failures"] == [], f"failures {where}: {json.dumps(report['failures'])[:3000]}"
    assert report["count"] >= 6, report


@pytest.mark.browser
def test_the_bindings_conversions_in_chromium(static_page: Any) -> None:
    report = static_page.evaluate(
        """async (origin) => {
            const { runCodeMirrorTests } = await import(`${origin}/tests/web/codemirror_unit.js`);
            return runCodeMirrorTests();
        }""",
        STATIC_ORIGIN,
    )
    _report_clean(report, "in Chromium")


def test_the_bindings_conversions_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the same tests run in Chromium")
    run = subprocess.run(
        [node, "tests/web/run_codemirror_node.js"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    lines = run.stdout.strip().splitlines()
    assert lines, f"node printed nothing; stderr: {run.stderr}"
    _report_clean(json.loads(lines[-1]), "under Node")
    assert run.returncode == 0, run.stderr


def test_the_vendored_bundle_is_the_locked_versions_with_their_licences() -> None:
    lock = json.loads((ROOT / "scripts" / "codemirror" / "package-lock.json").read_text(encoding="utf-8"))
    locked = {
        path.removeprefix("node_modules/"): meta["version"] for path, meta in lock["packages"].items() if path
    }
    header = (VENDOR / "codemirror.js").read_text(encoding="utf-8").split("\n", 20)
    named: dict[str, str] = {}
    for line in header:
        if m := re.fullmatch(r"//   (\S+)@(\S+)", line):
            named[m[1]] = m[2]
    assert "@codemirror/state" in named and "@codemirror/view" in named, header[:12]
    for package, version in named.items():
        assert locked.get(package) == version, (
            f"web/vendor/codemirror.js holds {package}@{version}, the lock says {locked.get(package)}: "
            "run scripts/build_codemirror"
        )
    licences = (VENDOR / "LICENSE-codemirror").read_text(encoding="utf-8")
    for package, version in named.items():
        assert f"{package}@{version} (MIT)" in licences
    assert licences.count("Permission is hereby granted, free of charge") == len(named)
