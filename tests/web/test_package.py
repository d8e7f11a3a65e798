"""The browser client as a package: web/index.js exports the public API, and web/package.json
lets Node (and so a bundler) resolve it by name, with no DOM and no side effect on import."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.web.conftest import ROOT

PUBLIC = [
    "TandemClient", "randomId", "CLOSE_TOKEN_EXPIRED", "CLOSE_REVOKED",
    "Retain", "Insert", "Delete", "insertOp", "deleteOp",
    "replaceOp", "replacement", "apply", "compose", "transform", "invert", "normalize", "IDENTITY",
    "InvalidOperation", "transformCursor", "transformIndex", "codePointLength", "toCodePoint", "toUtf16",
    "UndoManager", "caretElement", "peerColor", "peerName", "PresenceOverlay", "loadUser", "saveUser",
    "TextareaBinding",
    "diffToOp", "changeEnd", "tandemCollab", "CodeMirrorBinding", "changesToOp", "opToChanges", "statusText",
]  # fmt: skip

SCRIPT = """
import * as api from "tandem-client";
import { tandemCollab } from "tandem-client/codemirror";
console.log(JSON.stringify({
  names: Object.keys(api),
  same: api.tandemCollab === tandemCollab,
  documentTouched: typeof globalThis.document !== "undefined",
}));
"""


def test_the_entry_point_resolves_by_name_and_exports_the_public_api(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "tandem-client").symlink_to(ROOT / "web", target_is_directory=True)
    (tmp_path / "app.mjs").write_text(SCRIPT, encoding="utf-8")
    run = subprocess.run([node, "app.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(set(PUBLIC) - set(report["names"])) == []
    assert report["same"] and not report["documentTouched"]
    package = json.loads((ROOT / "web" / "package.json").read_text(encoding="utf-8"))
    assert package["exports"]["."] == "./index.js" and package["sideEffects"] is False
