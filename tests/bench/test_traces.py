"""The trace workload's pure parts: reading a trace, replaying it, the table rows. No timing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from scripts.bench import report, traces
from tandem.ot.operation import apply, replace_op

SMALL = {
    "startContent": "",
    "endContent": "héllo 🌍!",
    "txns": [
        {"time": "t0", "patches": [[0, 0, "hello"]]},
        {"time": "t1", "patches": [[1, 1, "é"], [5, 0, " world"]]},
        {"time": "t2", "patches": [[6, 5, "🌍"], [7, 0, "!"]]},
    ],
}


def write(tmp_path: Path, data: dict[str, object], name: str = "small") -> Path:
    path = tmp_path / f"{name}.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def test_replay_reaches_the_end_in_code_points(tmp_path: Path) -> None:
    trace = traces.load(write(tmp_path, SMALL))
    assert (trace.name, trace.total, len(trace.patches)) == ("small", 5, 5)
    assert traces.replay(trace.start, trace.patches) == trace.end == "héllo 🌍!"


def test_a_limit_keeps_a_prefix_and_its_own_end(tmp_path: Path) -> None:
    trace = traces.load(write(tmp_path, SMALL), limit=3)
    assert len(trace.patches) == 3 and trace.total == 5
    assert trace.end == "héllo world"


def test_each_keystroke_as_a_tandem_op_gives_the_same_text(tmp_path: Path) -> None:
    trace = traces.load(write(tmp_path, SMALL))
    text = trace.start
    for pos, deleted, inserted in trace.patches:
        text = apply(text, replace_op(pos, deleted, inserted))
    assert text == trace.end


@pytest.mark.parametrize("name", traces.NAMES)
def test_the_real_traces_replay_to_their_end_content(name: str) -> None:
    path = traces.DEFAULT_DIR / f"{name}.json.gz"
    if not path.is_file():
        pytest.skip(f"no trace at {path}")
    full = traces.load(path)
    prefix = traces.load(path, limit=2000)
    assert prefix.patches == full.patches[:2000]
    assert traces.replay(prefix.start, prefix.patches) == prefix.end
    if name != "automerge-paper":  # the long one: its prefix is enough here
        assert traces.replay(full.start, full.patches) == full.end


def test_summary_and_table_rows(tmp_path: Path) -> None:
    trace = traces.load(write(tmp_path, SMALL), limit=4)
    tandem = traces.summary(trace, "tandem", {"final_s": 2.0, "typed_s": 1.5, "ops": 2, "matches": True})
    sharedb = traces.summary(trace, "sharedb", {"final_s": 4.0, "typed_s": 3.9, "ops": 4, "matches": True})
    assert tandem["keystrokes_per_s"] == 2.0 and tandem["keystrokes_per_op"] == 2.0
    assert sharedb["keystrokes_per_s"] == 1.0
    lines = report.traces_table([sharedb, tandem])
    row = lines[-1]
    assert row.startswith("| small | 4 of 5 | 1 / 2 | 2.00x | 4 (1) / 2 (2) | 4 / 2 | 3.9 / 1.5 |")
    assert row.endswith("| True / True |")


def test_a_failed_run_keeps_its_error_in_the_row(tmp_path: Path) -> None:
    trace = traces.load(write(tmp_path, SMALL))
    failed = traces.summary(trace, "sharedb", {"error": "trace.js exited 1: boom"})
    ok = traces.summary(trace, "tandem", {"final_s": 1.0, "ops": 1, "matches": True})
    row = report.traces_table([failed, ok])[-1]
    assert "| n/a |" in row and "errors: trace.js exited 1: boom" in row


def test_scaling_rows_show_cpu_per_edit() -> None:
    runs = [
        {"name": "scale", "processes": 1, "edits_per_s": 3000.0, "server_cores": 0.9, "redis_cores": 0.12,
         "server_us_per_edit": 300.0, "redis_us_per_edit": 40.0, "converged": True},
        {"name": "scale", "processes": 2, "edits_per_s": 3300.0, "converged": True},
    ]  # fmt: skip
    lines = report.scaling_table(runs)
    assert "| 1 | 3,000 | 1.00x |" in lines[2] and "| 0.9 / 0.12 | 300 / 40 |" in lines[2]
    assert "| 2 | 3,300 | 1.10x |" in lines[3] and "| n/a / n/a | n/a / n/a |" in lines[3]
