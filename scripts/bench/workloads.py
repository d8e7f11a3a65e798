"""The measured runs: the kit's loadgen workloads, the authors ladder, multi-process scaling, memory,
and the OT-core micro-benchmarks. Each server run gets a fresh server, as the kit's run-all.js does."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import traces
from .procs import CpuWatch, cpu_seconds, process_name
from .servers import Running, start

Result = dict[str, Any]

# name -> loadgen flags: the kit's default sizes (but 25 timed joins instead of 5: a join is ~2 ms and
# a median of 5 moved by +-30% between runs), and small ones for a quick check of the harness
WORKLOADS: dict[str, list[str]] = {
    "hot8": "--workload hot --clients 8 --edits 500".split(),
    "hot32": "--workload hot --clients 32 --edits 200".split(),
    "many": "--workload many --docs 50 --edits 100".split(),
    "join20k": "--workload join --history 20000 --samples 25".split(),
    # deletes keep the text near 20,000 chars, so only the history grows against join20k
    "join200k": "--workload join --history 200000 --samples 25 --prefill-del-ratio 0.45".split(),
}
QUICK: dict[str, list[str]] = {
    "hot8": "--workload hot --clients 8 --edits 100 --warmup 50".split(),
    "hot32": "--workload hot --clients 32 --edits 30 --warmup 50".split(),
    "many": "--workload many --docs 20 --edits 30 --warmup 50".split(),
    "join20k": "--workload join --history 2000 --samples 3 --warmup 50".split(),
    "join200k": "--workload join --history 8000 --samples 3 --warmup 50 --prefill-del-ratio 0.45".split(),
}
AUTHORS_P95_LIMIT_MS = 100.0
# The per-connection rate limit protects against runaway clients; loadgen's clients are robots that
# type as fast as acks come back (hundreds of ops/s each), and ShareDB has no such limit.
TANDEM_BENCH_ARGS = ["--ops-per-second", "1000000"]


@dataclass
class Bench:
    """What every run needs: the installed kit, where logs go, and how to start Tandem."""

    kit: Path
    logs: Path
    quick: bool = False
    tandem_args: list[str] | None = None
    authors_seconds: float = 10.0

    def start(self, server: str, processes: int = 1, shared_redis: bool = False, workers: int = 1) -> Running:
        args = [*TANDEM_BENCH_ARGS, *(self.tandem_args or [])]
        return start(server, self.kit, self.logs, processes, args, shared_redis, workers)


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _parse_last_json(out: str) -> Result:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            parsed: Result = json.loads(line)
            return parsed
    return {"error": "no JSON line on stdout"}


def loadgen_cmd(b: Bench, running: Running, url: str, flags: list[str], label: str, max_s: int) -> list[str]:
    return [
        "node",
        "loadgen.js",
        "--adapter",
        running.adapter,
        "--url",
        url,
        "--label",
        label,
        "--server-pid",
        ",".join(map(str, running.pids())),
        "--max-seconds",
        str(max_s),
        *flags,
    ]


def run_loadgens(
    b: Bench, running: Running, flag_sets: list[tuple[str, list[str]]], label: str, max_s: int = 120
) -> list[Result]:
    """Runs one loadgen per (url, flags) in parallel against a running server; one result each."""
    watch = CpuWatch(running.pids())
    split0 = _cpu_split(running)
    t0 = time.monotonic()
    metrics0 = _metrics(running)
    procs = [
        subprocess.Popen(
            loadgen_cmd(b, running, url, flags, label, max_s),
            cwd=b.kit,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url, flags in flag_sets
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max_s + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        res = _parse_last_json(out)
        if proc.returncode != 0 or "error" in res:
            first = next(
                (
                    ln
                    for ln in err.splitlines()
                    if ln.lstrip().startswith(("Error", "RangeError", "TypeError"))
                ),
                err.strip()[:300],
            )
            res["error"] = f"{res.get('error', 'failed')} (loadgen exit {proc.returncode}: {first[:300]})"
        results.append(res)
    other = watch.other_util()
    split = {k: round(v - split0.get(k, 0.0), 3) for k, v in _cpu_split(running).items()}
    span = time.monotonic() - t0
    counters = {k: v - metrics0.get(k, 0.0) for k, v in _metrics(running).items()}
    for res in results:
        res["harness_other_cpu_util"] = other
        res.setdefault("other_cpu_util", other)
        res["server_cpu_s_by_process"] = split
        res["harness_span_s"] = round(span, 3)
        if counters:
            res["server_counters"] = counters
    return results


def _cpu_split(running: Running) -> dict[str, float]:
    """CPU seconds so far of the server's processes by kind: the server itself, and its Redis."""
    out: dict[str, float] = {}
    for pid in running.pids():
        kind = "redis" if process_name(pid).startswith("redis") else "server"
        out[kind] = out.get(kind, 0.0) + cpu_seconds([pid])
    return out


COUNTERS = (
    "tandem_ops_committed_total",
    "tandem_commits_total",
    "tandem_frames_sent_total",
    "tandem_messages_sent_total",
    "tandem_commit_retries_total",
    "tandem_remote_ops_total",
)


def _metrics(running: Running) -> dict[str, float]:
    """Tandem's own counters (ops per group commit, messages per frame), summed over its processes."""
    if running.name != "tandem" or running.workers > 1:  # a request reaches one worker of several
        return {}
    out: dict[str, float] = {}
    for url in running.urls:
        http = url.replace("ws://", "http://") + "/metrics"
        try:
            with urllib.request.urlopen(http, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in COUNTERS:
                out[name] = out.get(name, 0.0) + float(value)
    return out


def measure(b: Bench, server: str, name: str, rep: int) -> Result:
    """One kit workload against a fresh server."""
    flags = (QUICK if b.quick else WORKLOADS)[name]
    max_s = 400 if name == "join200k" else 120
    running = b.start(server)
    try:
        res = run_loadgens(b, running, [(running.urls[0], flags)], f"{name}#{rep}", max_s)[0]
        if name.startswith("join") and server == "tandem" and not res.get("error"):
            res.update(cold_joins(b, running))
    finally:
        running.stop()
    res.update(server=server, name=name, rep=rep)
    _log(f"{server} {name}#{rep}: {_brief(res)}")
    return res


COLD_JOINS = 3


def cold_joins(b: Bench, running: Running) -> Result:
    """Joins of the join workload's document by a freshly started server, which must load it from
    Redis (a snapshot plus the ops after it), not from memory: one join per restart."""
    import redis  # the venv's client, to find the document loadgen named

    assert running.scratch is not None
    client = redis.Redis(unix_socket_path=str(_embedded_socket(running.scratch)))
    try:
        heads = [k.decode() for k in client.scan_iter(match="tandem:{*-join}:head")]
    finally:
        client.close()
    if len(heads) != 1:
        return {"cold_join_error": f"expected one join document in Redis, found {heads}"}
    doc = heads[0][len("tandem:{") : -len("}:head")]
    adapter = str(b.kit / "adapters" / "tandem.js")
    samples: list[float] = []
    for _ in range(COLD_JOINS):
        running.restart()
        out = subprocess.run(
            [
                "node",
                str(Path(__file__).with_name("join.js")),
                "--adapter",
                adapter,
                "--url",
                running.urls[0],
                "--doc",
                doc,
                "--warm-doc",
                "bench-cold-join-warmup",
            ],
            cwd=b.kit,
            capture_output=True,
            text=True,
            timeout=120,
        )
        got = _parse_last_json(out.stdout)
        if "error" in got:
            return {"cold_join_error": str(got["error"])}
        samples += got["join_ms"]
    return {"cold_join_ms_median": statistics.median(samples), "cold_join_ms_samples": samples}


def _embedded_socket(scratch: Path) -> Path:
    """The unix socket of the embedded Redis `tandem serve --data-dir scratch/data-0` started."""
    sock = scratch / "data-0" / "redis.sock"
    if not sock.exists():
        raise RuntimeError(f"no Redis socket at {sock}")
    return sock


def _brief(res: Result) -> str:
    keys = (
        "edits_per_s",
        "lat_p50_ms",
        "lat_p95_ms",
        "lat_p99_ms",
        "join_ms_median",
        "cold_join_ms_median",
        "server_cpu_util",
        "loadgen_cpu_util",
        "other_cpu_util",
        "converged",
        "error",
    )
    return " ".join(f"{k}={res[k]}" for k in keys if res.get(k) is not None)


def authors_pass(res: Result, limit_ms: float = AUTHORS_P95_LIMIT_MS) -> bool:
    """A step passes when every keystroke was acked, all converged and p95 stayed under the limit."""
    return (
        not res.get("error")
        and res.get("converged") is True
        and res.get("acked") == res.get("offered")
        and res.get("lat_p95_ms") is not None
        and float(res["lat_p95_ms"]) < limit_ms
    )


def authors_ladder(
    run: Callable[[int], Result], start_n: int = 100, step: int = 50, fine: int = 25, cap: int = 1000
) -> tuple[int | None, list[Result]]:
    """Largest N (to `fine` granularity) that passes: coarse steps up to the first failure, then fine."""
    results: list[Result] = []
    best: int | None = None
    n = start_n
    while n <= cap:
        res = run(n)
        results.append(res)
        if not authors_pass(res):
            break
        best, n = n, n + step
    else:
        return best, results
    if best is None and n > fine:  # failed at the very first step: walk down instead
        m = n - fine
        while m > 0:
            res = run(m)
            results.append(res)
            if authors_pass(res):
                return m, results
            m -= fine
        return None, results
    m = (best or 0) + fine
    while m < n:
        res = run(m)
        results.append(res)
        if not authors_pass(res):
            break
        best, m = m, m + fine
    return best, results


def authors(b: Bench, server: str, start_n: int = 100) -> Result:
    """The authors ladder for one server, a fresh server per step."""

    def step(n: int) -> Result:
        secs = 3 if b.quick else b.authors_seconds
        flags = [
            "--workload",
            "authors",
            "--clients",
            str(n),
            "--rate",
            "2",
            "--seconds",
            str(secs),
            "--warmup",
            "0",
        ]
        running = b.start(server)
        try:
            res = run_loadgens(b, running, [(running.urls[0], flags)], f"authors{n}", 120)[0]
        finally:
            running.stop()
        res.update(server=server, name="authors", n=n, passed=authors_pass(res))
        _log(f"{server} authors N={n}: {_brief(res)} passed={res['passed']}")
        return res

    ladder = authors_ladder(step, 10, 10, 5, 30) if b.quick else authors_ladder(step, start_n)
    best, steps = ladder
    return {"server": server, "name": "authors", "max_n": best, "steps": steps}


def scaling(b: Bench, workers: int, docs: int = 50, edits: int = 100) -> Result:
    """The many-documents workload on `tandem serve --workers N` (one port, its embedded Redis),
    one loadgen per worker, all on that port, the documents split between them."""
    if b.quick:
        docs, edits = 10, 30
    running = b.start("tandem", workers=workers)
    per = [docs // workers + (1 if i < docs % workers else 0) for i in range(workers)]
    try:
        url = running.urls[0]
        sets = [(url, ["--workload", "many", "--docs", str(d), "--edits", str(edits)]) for d in per]
        parts = run_loadgens(b, running, sets, f"scale{workers}", 120)
    finally:
        running.stop()
    errors = [p["error"] for p in parts if p.get("error")]
    edits_done = sum(p.get("edits", 0) for p in parts)
    split = parts[0].get("server_cpu_s_by_process") or {}
    span = parts[0].get("harness_span_s") or 0
    res: Result = {
        "server": "tandem",
        "name": "scale",
        "processes": workers,
        "docs": docs,
        "edits": edits_done,
        "edits_per_s": sum(p.get("edits_per_s", 0) for p in parts),
        "lat_p99_ms": max((p.get("lat_p99_ms") or 0) for p in parts),
        "server_cpu_util": max((p.get("server_cpu_util") or 0) for p in parts),
        "loadgen_cpu_util": round(sum((p.get("loadgen_cpu_util") or 0) for p in parts), 3),
        "other_cpu_util": parts[0].get("harness_other_cpu_util"),
        "converged": all(p.get("converged") is True for p in parts),
        "parts": parts,
    }
    # per edit over the whole span (warm-up and connections included, so a little high)
    warmups = 200 * len(parts)
    if span and edits_done:
        for kind in ("server", "redis"):
            res[f"{kind}_cores"] = round(split.get(kind, 0.0) / span, 3)
            res[f"{kind}_us_per_edit"] = round(split.get(kind, 0.0) / (edits_done + warmups) * 1e6, 1)
    if errors:
        res["error"] = "; ".join(errors)
    _log(f"tandem scale x{workers}: {_brief(res)}")
    return res


def trace_run(b: Bench, server: str, trace: traces.Trace) -> Result:
    """One trace through one fresh server: its own client streams it into a new document."""
    running = b.start(server)
    pids = running.pids()
    watch = CpuWatch(pids)
    cpu0 = cpu_seconds(pids)
    doc = f"trace-{trace.name}"
    try:
        if server == "tandem":
            res = traces.run_tandem(running.urls[0].replace("ws://", "http://"), doc, trace)
        elif server == "sharedb":
            res = traces.run_sharedb(b.kit, running.urls[0], doc, trace, b.logs, traces.MAX_SECONDS)
        else:
            raise ValueError(f"no trace client for {server}")
        res["server_cpu_s"] = round(cpu_seconds(pids) - cpu0, 3)
        res["other_cpu_util"] = watch.other_util()
    finally:
        running.stop()
    row = traces.summary(trace, server, res)
    _log(
        f"{server} trace {trace.name}: {row.get('keystrokes_per_s', 0):.0f} keystrokes/s, "
        f"{row.get('ops')} ops, final {row.get('final_s')} s, matches={row.get('matches')} "
        f"{row.get('error', '')}"
    )
    return row
