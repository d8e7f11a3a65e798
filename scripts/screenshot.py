#!/usr/bin/env python3
"""Take the README's screenshots: two editor pages side by side, each showing the other's
cursor (docs/screenshot.png); the editor page with its history panel open on an earlier
revision (docs/screenshot-history.png); the same document in the CodeMirror page
(docs/screenshot-codemirror.png).

Needs a running server and a Chromium (as the browser tests do):

    ./scripts/serve &
    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tandem.testing.chromium import CHROMIUM_ARGS, find_chromium

VIEWPORT = {"width": 620, "height": 430}
WIDE = {"width": 1040, "height": 470}


def _open(
    browser: Any, url: str, name: str, color: str, viewport: dict[str, int] = VIEWPORT, focus: str = "#editor"
) -> Any:
    context = browser.new_context(viewport=viewport, device_scale_factor=2)
    user = json.dumps({"name": name, "color": color})
    context.add_init_script(f"localStorage.setItem('tandem.user', {json.dumps(user)})")
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.tandem && window.tandem.state === 'connected'")
    page.click(focus)
    return page


def _history(browser: Any, url: str, rev: int, out: str) -> None:
    """The editor page with the history panel open on revision ``rev``."""
    page = _open(browser, url, "Lin", "#2e7d32", WIDE)
    page.click("#history-toggle")
    page.fill("#history-slider", str(rev))
    page.wait_for_function(
        "(rev) => window.tandem.history.shown && window.tandem.history.shown.rev === rev"
        " && !document.getElementById('history').dataset.loading",
        arg=rev,
    )
    page.screenshot(path=out)
    page.context.close()


def _codemirror(browser: Any, url: str, out: str) -> None:
    """The same document in web/cm.html, the others' carets drawn."""
    page = _open(browser, url, "Lin", "#2e7d32", WIDE, focus=".cm-content")
    page.wait_for_function("document.querySelectorAll('.cm-tandem-name').length >= 2")
    page.screenshot(path=out)
    page.context.close()


def _settle(*pages: Any) -> None:
    for page in pages:
        page.wait_for_function("window.tandem.synced")
    rev = pages[0].evaluate("window.tandem.rev")
    for page in pages:
        page.wait_for_function(f"window.tandem.rev === {rev} && window.tandem.synced")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
    parser.add_argument("--out", default="docs/screenshot.png", help="two pages (default: %(default)s)")
    parser.add_argument(
        "--history-out",
        default="docs/screenshot-history.png",
        help="the history panel (default: %(default)s)",
    )
    parser.add_argument(
        "--codemirror-out", default="docs/screenshot-codemirror.png", help="CodeMirror (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: install Debian's chromium or set TANDEM_CHROMIUM", file=sys.stderr)
        return 1
    doc = f"screenshot-{secrets.token_hex(3)}"
    url = f"{args.url.rstrip('/')}/?doc={doc}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        ada = _open(browser, url, "Ada", "#1e88e5")
        grace = _open(browser, url, "Grace", "#d81b60")
        ada.keyboard.type("Meeting notes\n\n- ship the editor 😀\n- fix the flaky test\n")
        _settle(ada, grace)
        before_grace = ada.evaluate("window.tandem.rev")
        grace.keyboard.press("Control+End")
        grace.keyboard.type("- write the release notes\n")
        _settle(ada, grace)
        # Grace selects "flaky"; Ada's caret rests after the emoji
        grace.evaluate(
            "(() => { const e = document.getElementById('editor');"
            " const i = e.value.indexOf('flaky'); e.setSelectionRange(i, i + 5); })()"
        )
        grace.keyboard.press("Shift+ArrowRight")
        grace.keyboard.press("Shift+ArrowLeft")
        ada.evaluate(
            "(() => { const e = document.getElementById('editor');"
            " const i = e.value.indexOf('😀') + 2; e.setSelectionRange(i, i); })()"
        )
        ada.keyboard.press("ArrowLeft")
        ada.keyboard.press("ArrowRight")
        _settle(ada, grace)
        for page, other in ((ada, "Grace"), (grace, "Ada")):
            page.wait_for_function(
                "(name) => [...document.querySelectorAll('.peer-name')].some((e) => e.textContent === name)",
                arg=other,
            )
        shots = [base64.b64encode(page.screenshot()).decode() for page in (ada, grace)]
        width = VIEWPORT["width"]
        sheet = browser.new_page(
            viewport={"width": 2 * VIEWPORT["width"] + 12, "height": VIEWPORT["height"]},
            device_scale_factor=2,
        )
        sheet.set_content(
            "<body style='margin:0;background:#8c959f;display:flex;gap:12px'>"
            + "".join(f"<img style='width:{width}px' src='data:image/png;base64,{s}'>" for s in shots)
            + "</body>"
        )
        sheet.wait_for_function("[...document.images].every((i) => i.complete)")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        sheet.screenshot(path=args.out)
        sheet.close()
        _history(browser, url, before_grace, args.history_out)
        _codemirror(browser, f"{args.url.rstrip('/')}/web/cm.html?doc={doc}", args.codemirror_out)
        browser.close()
    print(f"wrote {args.out}, {args.history_out} and {args.codemirror_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
