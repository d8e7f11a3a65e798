"""web/tandem.js with a token provider, under Node against a live server with a secret: closed at
its first token's expiry (4401), it asks the provider again and carries on with a fresh token."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tandem.server.auth import LEEWAY_SECONDS, Role, issue_token
from tests.support import ServerProcess, http_get, unique_doc

ROOT = Path(__file__).resolve().parents[2]
SECRET = "token-provider-test-secret-long-enough"


def test_the_browser_client_reconnects_with_a_fresh_token(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    doc = unique_doc("jstoken")
    # the first token lapses (exp plus the server's leeway) within 2 s; the next ones last
    short = issue_token(SECRET, doc, Role.WRITE, 2, now=time.time() - LEEWAY_SECONDS, sub="jo")
    fresh = issue_token(SECRET, doc, Role.WRITE, 120, sub="jo")
    with ServerProcess(None, tmp_path, env={"TANDEM_SECRET": SECRET}) as server:
        script = [
            node,
            "--experimental-websocket",
            "--no-warnings",
            str(ROOT / "tests/web/token_provider.js"),
        ]
        done = subprocess.run(
            [*script, f"{server.ws_url}/ws/{doc}", json.dumps([short, fresh])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        lines = done.stdout.strip().splitlines()
        assert lines, f"node printed nothing; stderr: {done.stderr[-2000:]}"
        report = json.loads(lines[-1])
        assert report["failure"] is None, report
        assert report["closes"] == [4401] and report["calls"] == 2, report
        assert (report["text"], report["rev"]) == ("ab", 2), report
        reader = issue_token(SECRET, doc, Role.READ, 60, sub="auditor")
        status, body = http_get(f"{server.http_url}/docs/{doc}?token={reader}")
        assert status == 200 and json.loads(body)["text"] == "ab", body
