"""Where a Tandem process spends its time under one workload: py-spy samples, folded to top entries.

scripts/bench/run --profile hot32          # or authors:200 (N authors), many, hot8
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from .servers import ROOT
from .workloads import WORKLOADS, Bench, Result, _log, run_loadgens

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
SHOWN = (
    "error",
    "edits_per_s",
    "lat_p95_ms",
    "lat_p99_ms",
    "server_cpu_util",
    "loadgen_cpu_util",
    "other_cpu_util",
)
_LINE = re.compile(r":\d+\)$")


def _frame_key(frame: str) -> str:
    """'send (starlette/websockets.py:123)' -> 'send (starlette/websockets.py)'; paths shortened."""
    frame = _LINE.sub(")", frame.strip())
    frame = re.sub(r"\(/[^()]*?/(site-packages|lib/python3\.\d+)/", "(", frame)
    return frame.replace(f"({ROOT}/", "(")


def fold(collapsed: str) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self samples per frame, inclusive samples per frame) of py-spy's raw output."""
    total = 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_key(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return total, own, incl


# Where a sample sits, by the first rule its stack matches (order matters).
BUCKETS: list[tuple[str, str]] = [
    ("Redis pub/sub listener", r"_listen \(|PubSub\.|Subscribed\.|Hub\._on_message"),
    ("commit: plan, rebase, hash, Redis call, broadcast to queues", r"Submissions\.commit|_GroupCommit"),
    ("other document work (joins, fetches, remote ops)", r"Document\._"),
    ("sending frames", r"Session\._write|WebSocket\.send|WebSocketsSansIOProtocol\.send|sender \(starlette"),
    ("writing to Redis", r"_send_packed_command|writelines|RespProtocol\.flush"),
    ("reading from Redis", r"read_response|_AsyncHiredis|StreamReader|RespProtocol\.(data_received|answer)"),
    (
        "receiving frames and dispatching",
        r"Session\._read|Session\._dispatch|Session\._op|data_received|receive_data",
    ),
    ("connecting and joining", r"_hello|Hub\._open|Document\.load|handle_websocket_upgrade|run_asgi"),
    ("event loop itself (uvloop: epoll, socket reads)", r"Runner\.run \([^;]*\)$"),
]


def buckets(collapsed: str) -> list[tuple[str, float]]:
    """Share of samples per BUCKETS rule (and 'other'), largest first."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        name = next((b for b, rx in BUCKETS if re.search(rx, stack)), "other")
        counts[name] += int(count)
    return [(name, 100 * n / max(total, 1)) for name, n in counts.most_common()]


def top_table(total: int, counter: Counter[str], n: int = 15) -> list[str]:
    lines = ["| share of samples | frame |", "|---|---|"]
    for frame, count in counter.most_common(n):
        lines.append(f"| {100 * count / max(total, 1):.1f}% | `{frame}` |")
    return lines


def profile(b: Bench, spec: str, out: Path) -> Result:
    """Run one workload against a fresh Tandem with py-spy attached; write the folded stacks to out."""
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        raise SystemExit("bench: py-spy not found; .venv/bin/pip install py-spy")
    name, _, arg = spec.partition(":")
    if name == "authors":
        flags = [
            "--workload",
            "authors",
            "--clients",
            arg or "200",
            "--rate",
            "2",
            "--seconds",
            "10",
            "--warmup",
            "0",
        ]
    elif name in WORKLOADS:
        flags = WORKLOADS[name]
    else:
        raise SystemExit(f"bench: --profile {spec!r}: use one of {', '.join(WORKLOADS)} or authors:N")
    running = b.start("tandem")
    raw = out.with_suffix(".folded")
    spy = subprocess.Popen(
        [
            str(PY_SPY if PY_SPY.exists() else "py-spy"),
            "record",
            "--pid",
            str(running.main_pids()[0]),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)
        res = run_loadgens(b, running, [(running.urls[0], flags)], f"profile-{spec}", 120)[0]
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        running.stop()
    if not raw.exists():
        err = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
        raise RuntimeError(f"py-spy wrote no profile: {err[-1000:]}")
    total, own, incl = fold(raw.read_text())
    text = "\n".join(
        [
            f"Profile of `tandem serve` under {spec}: {total} samples at 200/s (py-spy, idle excluded).",
            "Run: " + ", ".join(f"{k}={res[k]}" for k in SHOWN if k in res),
            f"CPU seconds by process: {res.get('server_cpu_s_by_process')}; "
            f"counters: {res.get('server_counters')}",
            "",
            "By where the sample sits: "
            + "; ".join(f"{name} {share:.1f}%" for name, share in buckets(raw.read_text())),
            "",
            "Self time (the frame itself):",
            "",
            *top_table(total, own),
            "",
            "Inclusive time (the frame and what it calls):",
            "",
            *top_table(total, incl, 25),
            "",
        ]
    )
    out.write_text(text)
    _log(f"profile written to {out} (folded stacks: {raw})")
    print(text)
    return {"name": "profile", "spec": spec, "samples": total, "run": res}
