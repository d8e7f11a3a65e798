"""Tandem against ShareDB on the peer kit's workloads, back to back on this machine.

    scripts/bench/run                       # the full table (about 8 minutes on 2 cores)
    scripts/bench/run --quick               # small sizes: checks the harness end to end in ~2 minutes
    scripts/bench/run --only hot32 --reps 3 # some workloads, medians of 3
    scripts/bench/run --report bench-results/2026-...jsonl   # print the table of an earlier run
    scripts/bench/run --profile hot32       # where Tandem's time goes (py-spy), top frames
    scripts/bench/run --only scale --workers 1,2          # tandem serve --workers 1, then 2
    scripts/bench/run --only traces --trace-limit 20000   # real editing traces, first 20,000 keystrokes

Raw results go to bench-results/<time>.jsonl, the table to bench-results/<time>.md and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import kit, memory, microbench, report, spy, traces, workloads
from .procs import idle_other_cpu
from .servers import ROOT, SERVERS

ALL = ["hot8", "hot32", "many", "join20k", "join200k", "authors", "scale", "memory", "transform", "traces"]
QUICK_TRACE_LIMIT = 2000
BUSY_LIMIT = 0.05  # cores used by others above which a run is for debugging only


def _csv(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--servers",
        type=_csv,
        default=["sharedb", "tandem"],
        help=f"servers to compare, of {','.join(SERVERS)} (default sharedb,tandem)",
    )
    p.add_argument("--only", type=_csv, default=ALL, help=f"runs to make (default all: {','.join(ALL)})")
    p.add_argument(
        "--skip",
        type=_csv,
        default=[],
        metavar="SERVER:RUN,...",
        help="runs one server leaves out, e.g. sharedb-pg:join200k (its 200,000-edit prefill takes ~12 min)",
    )
    p.add_argument("--reps", type=int, default=1, help="runs of hot8/hot32/many (median); joins run once")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the harness itself")
    p.add_argument("--kit", type=Path, default=kit.DEFAULT_SOURCE, help="the peer kit folder (read only)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where results are written")
    p.add_argument("--authors-seconds", type=float, default=10.0, help="length of each authors step")
    p.add_argument("--authors-start", type=int, default=100, help="first N of the authors ladder")
    p.add_argument(
        "--workers",
        "--scale",
        dest="scale",
        type=lambda t: [int(x) for x in _csv(t)],
        default=[1, 2],
        help="worker counts of `tandem serve --workers N` for the scaling run (default 1,2)",
    )
    p.add_argument("--trace-dir", type=Path, default=traces.DEFAULT_DIR, help="the editing traces folder")
    p.add_argument(
        "--traces",
        type=_csv,
        default=list(traces.NAMES),
        help=f"traces to stream (default {','.join(traces.NAMES)})",
    )
    p.add_argument(
        "--trace-limit",
        type=int,
        default=0,
        metavar="N",
        help=f"stream only the first N keystrokes of each trace (0: all; --quick: {QUICK_TRACE_LIMIT})",
    )
    p.add_argument("--memory-n", type=int, default=1000, help="connections / documents of the memory run")
    p.add_argument("--tandem-arg", action="append", default=[], help="extra argument to `tandem serve`")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the rest of the machine to go quiet",
    )
    p.add_argument("--report", type=Path, help="print the table of an earlier .jsonl and exit")
    p.add_argument(
        "--profile",
        metavar="WORKLOAD",
        help="instead of the table: profile Tandem with py-spy under hot8|hot32|many|authors:N",
    )
    args = p.parse_args(argv)
    for name in args.only:
        if name not in ALL:
            p.error(f"--only: unknown run {name!r}; choose from {','.join(ALL)}")
    for pair in args.skip:
        server, _, run = pair.partition(":")
        if server not in SERVERS or run not in ALL:
            p.error(f"--skip: {pair!r} is not SERVER:RUN with a server of {','.join(SERVERS)}")
    for name in args.servers:
        if name not in SERVERS:
            p.error(f"--servers: unknown server {name!r}; choose from {','.join(SERVERS)}")
    return args


def _cmd(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, Node {_cmd(['node', '--version'])}"
    )


def header(args: argparse.Namespace, idle: float, stamp: str) -> list[str]:
    dirty = (
        " (with uncommitted changes)" if _cmd(["git", "status", "--porcelain", "--", "server", "ot"]) else ""
    )
    when = f"{stamp[:10]} {stamp[11:].replace('-', ':')} UTC"
    commit = _cmd(["git", "rev-parse", "--short", "HEAD"])
    lines = [
        f"Run {when} on {machine()}; Tandem at commit {commit}{dirty}.",
        "",
        f"Command: `scripts/bench/run {' '.join(sys.argv[1:])}`. "
        "Servers back to back, a fresh server per run; "
        f"Tandem = `tandem serve` with a fresh data dir (embedded Redis, append-only file on); "
        "server CPU of Tandem includes its Redis. "
        f"hot8/hot32/many: medians of {args.reps} run(s); the rest: one run."
        + (
            " ShareDB on PostgreSQL = the kit's sharedb-pg-server.js on a fresh PostgreSQL per run "
            "(synchronous_commit=off); its server CPU: node and PostgreSQL's background processes, "
            "not its backends."
            if "sharedb-pg" in args.servers
            else ""
        ),
        "",
        f"Other CPU before the run: {idle:.3f} cores.",
    ]
    if idle > BUSY_LIMIT:
        lines.append(
            f"**The machine was busy (> {BUSY_LIMIT} cores used by others): these figures are for "
            "debugging only.**"
        )
    if args.quick:
        lines.append("**--quick: small sizes, not comparable with the kit's figures.**")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        earlier = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
        print(report.render(earlier, [f"From {args.report}"]))
        return 0
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / f"{stamp}-logs"
    logs.mkdir()
    raw_path = args.out / f"{stamp}.jsonl"
    idle = idle_other_cpu()
    deadline = time.monotonic() + args.wait_quiet
    while idle > BUSY_LIMIT and time.monotonic() < deadline:
        print(f"[bench] others use {idle:.2f} cores; waiting for a quiet machine", file=sys.stderr)
        idle = idle_other_cpu(5.0)
    print(
        f"[bench] other CPU before the run: {idle:.3f} cores"
        + (" (busy machine: debugging figures only)" if idle > BUSY_LIMIT else ""),
        file=sys.stderr,
    )
    b = workloads.Bench(kit.prepare(args.kit), logs, args.quick, args.tandem_arg, args.authors_seconds)
    if args.profile:
        spy.profile(b, args.profile, args.out / f"{stamp}-profile-{args.profile.replace(':', '')}.md")
        return 0
    records: list[dict[str, Any]] = []

    def keep(run: Callable[[], dict[str, Any]], what: str) -> None:
        try:
            rec = run()
        except Exception as exc:  # one failed run must not lose the others
            rec = {"name": what.split()[0], "server": what.split()[-1], "error": f"{what}: {exc}"}
            print(f"[bench] {what} failed: {exc}", file=sys.stderr)
        records.append(rec)
        with raw_path.open("a") as raw:
            raw.write(json.dumps(rec) + "\n")

    for name in [n for n in args.only if n in workloads.WORKLOADS]:
        reps = 1 if name.startswith("join") else args.reps  # a join run is minutes of prefill
        for rep in range(1, reps + 1):
            for server in args.servers:
                if f"{server}:{name}" not in args.skip:
                    keep(partial(workloads.measure, b, server, name, rep), f"{name} {server}")
    if "authors" in args.only:
        for server in args.servers:
            if f"{server}:authors" not in args.skip:
                keep(partial(workloads.authors, b, server, args.authors_start), f"authors {server}")
    if "scale" in args.only and "tandem" in args.servers:
        for procs in args.scale:
            keep(partial(workloads.scaling, b, procs), "scale tandem")
    if "memory" in args.only:
        for server in args.servers:
            if f"{server}:memory" not in args.skip:
                keep(partial(memory.memory, b, server, args.memory_n), f"memory {server}")
    if "transform" in args.only:
        keep(partial(microbench.transform, b), "transform all")
    if "traces" in args.only:
        limit = args.trace_limit or (QUICK_TRACE_LIMIT if args.quick else 0)
        for name in args.traces:
            trace = traces.load(args.trace_dir / f"{name}.json.gz", limit)
            for server in [s for s in args.servers if s in ("sharedb", "tandem")]:
                keep(partial(workloads.trace_run, b, server, trace), f"traces {server}")
    text = report.render(records, header(args, idle, stamp))
    (args.out / f"{stamp}.md").write_text(text)
    print(text)
    print(f"[bench] raw results: {raw_path}; logs: {logs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
