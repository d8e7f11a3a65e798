"""The editor page's history panel in a real Chromium against a real server: the slider shows
the server's text at any revision with who made it and when, and restores an old version as
one new revision that every page receives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import RedisProcess, ServerProcess, assert_verified, document, http_get
from tests.web.pages import Editor, Editors, post_op

pytestmark = pytest.mark.browser


def _get(server: ServerProcess, path: str) -> tuple[int, dict[str, Any]]:
    status, body = http_get(f"{server.http_url}{path}")
    answer: dict[str, Any] = json.loads(body)
    return status, answer


def _ops(server: ServerProcess, doc: str) -> list[dict[str, Any]]:
    status, page = _get(server, f"/docs/{doc}/ops?from=1")
    assert status == 200 and page["next"] is None, page
    ops: list[dict[str, Any]] = page["ops"]
    return ops


def _open_history(editor: Editor) -> None:
    editor.page.click("#history-toggle")
    editor.page.wait_for_selector("#history:not([hidden])")
    _wait_shown(editor, editor.state("rev"))


def _wait_shown(editor: Editor, rev: int) -> None:
    """The panel has loaded revision ``rev`` (or failed on it) and fetches nothing more."""
    editor.page.wait_for_function(
        "(rev) => { const p = document.getElementById('history');"
        " return !p.dataset.loading && window.tandem.history.rev === rev"
        " && (document.getElementById('history-view').dataset.rev === String(rev)"
        "     || !document.getElementById('history-error').hidden); }",
        arg=rev,
    )


def _panel(editor: Editor) -> dict[str, Any]:
    shown: dict[str, Any] = editor.page.evaluate(
        "() => { const $ = (id) => document.getElementById(id); return {"
        " view: $('history-view').textContent, rev: $('history-view').dataset.rev,"
        " meta: $('history-meta').textContent, client: $('history-meta').dataset.client,"
        " time: $('history-meta').dataset.time, label: $('history-label').textContent,"
        " max: $('history-slider').max, value: $('history-slider').value,"
        " error: $('history-error').hidden ? null : $('history-error').textContent,"
        " restorable: !$('history-restore').disabled }; }"
    )
    return shown


def test_the_slider_shows_each_revision_with_its_author_and_restores_one(editors: Editors) -> None:
    started_ms = time.time() * 1000
    one = editors.open()
    two = editors.open(one.doc)
    one.type("alpha ")
    editors.converged(one, two)
    two.page.keyboard.press("Control+End")
    two.type("beta ")
    editors.converged(one, two)
    one.page.keyboard.press("Control+End")
    one.type("gamma")
    editors.converged(one, two)
    finished_ms = time.time() * 1000

    ops = _ops(one.server, one.doc)
    head = len(ops)
    two_id = two.state("client.clientId")
    # The last revision two made: "alpha beta " (or part of it), with gamma still to come.
    target = max(op["rev"] for op in ops if op["client"] == two_id)
    assert target < head
    status, at_target = _get(one.server, f"/docs/{one.doc}?rev={target}")
    assert status == 200

    _open_history(one)
    shown = _panel(one)
    assert (shown["max"], shown["value"], shown["rev"]) == (str(head), str(head), str(head))
    assert shown["view"] == one.text
    # Keyboard on the slider: several quick steps, one fetch once it rests.
    one.page.focus("#history-slider")
    for _ in range(head - target):
        one.page.keyboard.press("ArrowLeft")
    _wait_shown(one, target)
    shown = _panel(one)
    assert shown["view"] == at_target["text"]
    assert shown["label"] == f"revision {target} of {head}"
    assert shown["client"] == two_id
    two_name = one.state("peers")[two_id]["user"]["name"]
    assert two_name in shown["meta"] and two_id in shown["meta"]
    stamped = int(shown["time"])
    assert started_ms - 1000 <= stamped <= finished_ms + 1000  # the server's clock, this machine's
    assert stamped == ops[target - 1]["time"]

    # prev and next step one revision and show each exactly as the server has it
    one.page.click("#history-prev")
    _wait_shown(one, target - 1)
    status, before_target = _get(one.server, f"/docs/{one.doc}?rev={target - 1}")
    assert _panel(one)["view"] == before_target["text"]
    one.page.click("#history-next")
    _wait_shown(one, target)
    assert _panel(one)["restorable"]

    old_head_text = document(one.server.http_url, one.doc)["text"]
    one.page.click("#history-restore")
    text = editors.converged(one, two)
    after = document(one.server.http_url, one.doc)
    assert after["rev"] == head + 1
    assert text == after["text"] == at_target["text"]
    assert two.text == at_target["text"]
    assert_verified(one.server.http_url, one.doc)
    restored = _ops(one.server, one.doc)
    assert restored[:head] == ops  # history untouched: the restore is one more revision
    assert restored[head]["client"] == one.state("client.clientId")
    status, old_head = _get(one.server, f"/docs/{one.doc}?rev={head}")
    assert old_head["text"] == old_head_text
    # the slider now reaches the new head
    one.page.wait_for_function(f"document.getElementById('history-slider').max === '{head + 1}'")
    # the restore is an edit of one's own: undo takes it back, as one more revision
    one.page.click("#editor")
    one.page.keyboard.press("Control+z")
    assert editors.converged(one, two) == old_head_text
    assert document(one.server.http_url, one.doc)["rev"] == head + 2
    assert one.errors == [] and two.errors == []


def test_a_revision_the_log_no_longer_holds_shows_the_servers_message(
    editors: Editors, redis: RedisProcess, tmp_path: Path
) -> None:
    server = ServerProcess(
        redis.url,
        tmp_path / "tandem",
        extra_args=("--log-level", "warning", "--snapshot-interval", "2", "--log-retention", "1"),
    )
    server.start()
    try:
        page = editors.open(server=server)
        for seq in range(1, 9):
            post_op(
                server,
                page.doc,
                {
                    "client": "bot",
                    "seq": seq,
                    "base": seq - 1,
                    "ops": [{"type": "Insert", "content": f"{seq} "}],
                },
            )
        page.wait_synced(8)
        status, gone = _get(server, f"/docs/{page.doc}?rev=1")
        assert status == 404 and gone["code"] == "not_found"
        _open_history(page)
        assert _panel(page)["view"] == page.text  # the head is always there
        page.page.focus("#history-slider")
        page.page.keyboard.press("Home")
        page.page.keyboard.press("ArrowRight")
        _wait_shown(page, 1)
        shown = _panel(page)
        assert shown["error"] == gone["message"]
        assert shown["view"] == "" and not shown["restorable"]
        assert page.errors == []
    finally:
        server.stop()
