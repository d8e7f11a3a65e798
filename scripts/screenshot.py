#!/usr/bin/env python3
"""Take the README's screenshot: two editor pages side by side, each showing the other's cursor.

Needs a running server and a Chromium (as the browser tests do):

    ./scripts/serve &
    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:8000 --out docs/screenshot.png
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


def _open(browser: Any, url: str, name: str, color: str) -> Any:
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
    user = json.dumps({"name": name, "color": color})
    context.add_init_script(f"localStorage.setItem('tandem.user', {json.dumps(user)})")
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.tandem && window.tandem.state === 'connected'")
    page.click("#editor")
    return page


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
    parser.add_argument("--out", default="docs/screenshot.png", help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: install Debian's chromium or set TANDEM_CHROMIUM", file=sys.stderr)
        return 1
    url = f"{args.url.rstrip('/')}/?doc=screenshot-{secrets.token_hex(3)}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        ada = _open(browser, url, "Ada", "#1e88e5")
        grace = _open(browser, url, "Grace", "#d81b60")
        ada.keyboard.type("Meeting notes\n\n- ship the editor 😀\n- fix the flaky test\n")
        _settle(ada, grace)
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
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
