"""The OT-core micro-benchmarks: the kit's transform-bench.js next to scripts/bench_ot.py."""

from __future__ import annotations

import subprocess

from .procs import CpuWatch
from .servers import ROOT
from .workloads import Bench, Result, _log, _parse_last_json


def transform(b: Bench) -> Result:
    """The kit's transform-bench.js (ot.js, ot-text-unicode) and scripts/bench_ot.py (Tandem's ot/)."""
    args = ["--pairs", "2000", "--rounds", "5"] if b.quick else []
    watch = CpuWatch([])
    node = subprocess.run(
        ["node", "transform-bench.js", "--seed", "42", *args],
        cwd=b.kit,
        capture_output=True,
        text=True,
        timeout=600,
    )
    js = _parse_last_json(node.stdout)
    py_script = ROOT / "scripts" / "bench_ot.py"
    py: Result = {"error": f"{py_script} not found"}
    if py_script.exists():
        run = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), str(py_script), "--seed", "42", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        py = (
            _parse_last_json(run.stdout)
            if run.returncode == 0
            else {"error": f"bench_ot.py exited {run.returncode}: {run.stderr.strip()[-500:]}"}
        )
    res: Result = {"name": "transform", "js": js, "py": py, "other_cpu_util": watch.other_util()}
    _log(f"transform: js={js.get('ops_per_s')} py={py}")
    return res
