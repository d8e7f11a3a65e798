"""The browser client's JavaScript: the shared OT vectors and its unit tests, under Node
and in Chromium, and the vectors themselves kept equal to a fresh generation."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ROOT, STATIC_ORIGIN

VECTORS = ROOT / "tests" / "vectors"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "scripts" / "gen_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_equal_a_fresh_generation() -> None:
    gen = _generator()
    for kind in gen.GENERATORS:
        path = VECTORS / f"{kind}.json"
        assert path.read_text(encoding="utf-8") == gen.render(kind), (
            f"{path.name} differs from what the Python implementation gives now; "
            "run .venv/bin/python scripts/gen_vectors.py and review the diff"
        )


def test_vectors_cover_astral_text_and_ties() -> None:
    transform = json.loads((VECTORS / "transform.json").read_text(encoding="utf-8"))["cases"]
    assert any("😀" in case["doc"] for case in transform)
    ties = [c for c in transform if [x["type"] for x in c["a"][:1] + c["b"][:1]] == ["Insert", "Insert"]]
    assert len(ties) >= 5, "too few concurrent inserts at one position to pin the tie rule"


def _assert_clean(report: dict[str, Any], where: str) -> None:
    assert report["failures"] == [], f"JavaScript failures {where}: {json.dumps(report['failures'])[:3000]}"
    assert sum(report["vectors"].values()) > 1000 and report["unit"] > 5, report


def test_javascript_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the same tests run in Chromium")
    run = subprocess.run(
        [node, str(Path("tests/web/run_node.js"))], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    lines = run.stdout.strip().splitlines()
    assert lines, f"node printed nothing; stderr: {run.stderr}"
    _assert_clean(json.loads(lines[-1]), "under Node")
    assert run.returncode == 0, run.stderr


@pytest.mark.browser
def test_javascript_in_chromium(static_page: Any) -> None:
    report = static_page.evaluate(
        """async (origin) => {
            const { KINDS, runVectors } = await import(`${origin}/tests/web/vectors.js`);
            const { runUnitTests } = await import(`${origin}/tests/web/unit.js`);
            const vectors = {};
            for (const kind of KINDS) {
                vectors[kind] = await (await fetch(`${origin}/tests/vectors/${kind}.json`)).json();
            }
            const v = runVectors(vectors);
            const u = runUnitTests();
            return { vectors: v.counts, unit: u.count, failures: [...v.failures, ...u.failures] };
        }""",
        STATIC_ORIGIN,
    )
    _assert_clean(report, "in Chromium")
