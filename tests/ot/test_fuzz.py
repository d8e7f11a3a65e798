"""scripts/fuzz: runs clean with a seed, and reports a broken law with a minimal example."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tandem.ot import Delete, Operation, laws

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"


def load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_fuzz_runs_clean_with_a_seed() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "15", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "all 8 laws hold (seed 7)"
    assert all(line.split()[1] == "15" for line in lines[:-1]), lines


def broken_compose(s: str, a: Operation, b: Operation) -> None:
    """A law that is wrong for any op that deletes."""
    if any(type(c) is Delete for c in a):
        raise laws.LawViolation("compose: a deletes")


def test_fuzz_reports_a_broken_law_with_a_minimal_case(capsys: pytest.CaptureFixture[str]) -> None:
    fuzz = load_fuzz()
    status = fuzz.main(["--count", "200", "--seed", "1"], laws={"compose": broken_compose})
    assert status == 1
    out = capsys.readouterr().out.splitlines()
    found = json.loads(out[0])
    assert found["law"] == "compose" and found["error"] == "LawViolation: compose: a deletes"
    # shrunk: a one code point document, and an op deleting it
    assert (found["case"]["s"], found["case"]["a"]) == ("a", [{"type": "Delete", "length": 1}])
    assert out[-1] == "FAILED"


def test_fuzz_refuses_a_bad_count() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--count must be at least 1, got 0" in done.stderr
