"""The memory run: resident memory of a server holding many idle connections, and many open documents."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from .procs import process_name, rss_bytes
from .servers import Running
from .workloads import Bench, Result, _log


def _rss_split(running: Running) -> dict[str, int]:
    """Resident bytes of the server processes, Redis counted apart from the server itself."""
    out = {"server": 0, "redis": 0}
    for pid in running.pids():
        out["redis" if process_name(pid).startswith("redis") else "server"] += rss_bytes(pid)
    return out


def _hold(b: Bench, server: str, conns: int, docs: int, insert: str) -> Result:
    running = b.start(server)
    adapter = str(b.kit / "adapters" / f"{running.adapter}.js")
    cmd = [
        "node",
        str(Path(__file__).with_name("hold.js")),
        "--adapter",
        adapter,
        "--url",
        running.urls[0],
        "--conns",
        str(conns),
        "--docs",
        str(docs),
    ] + (["--insert", insert] if insert else [])
    holder = subprocess.Popen(cmd, cwd=b.kit, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        first = json.loads(holder.stdout.readline() or '{"phase":"none"}')
        if first.get("phase") != "warm":
            raise RuntimeError(f"hold.js against {server}: {first}")
        time.sleep(1.0)
        base = _rss_split(running)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        held = json.loads(holder.stdout.readline() or '{"phase":"none"}')
        if held.get("phase") != "held":
            raise RuntimeError(f"hold.js against {server}: {held}")
        time.sleep(2.0)
        after = _rss_split(running)
        holder.stdin.close()
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        running.stop()
    return {"base": base, "held": after, "conns": conns, "docs": docs, "open_s": held.get("open_s")}


def memory(b: Bench, server: str, n: int = 1000) -> Result:
    """RSS growth with n idle connections on one document, and with n documents (one connection each)."""
    if b.quick:
        n = 100
    conns = _hold(b, server, n, 1, "")
    docs = _hold(b, server, n, n, "hello")

    def grown(r: Result, part: str) -> int:
        return int(r["held"][part]) - int(r["base"][part])

    per_conn = grown(conns, "server") / n
    per_doc = grown(docs, "server") / n - per_conn
    res: Result = {
        "server": server,
        "name": "memory",
        "n": n,
        "base_rss": conns["base"]["server"],
        "conns_rss": conns["held"]["server"],
        "docs_rss": docs["held"]["server"],
        "bytes_per_conn": round(per_conn),
        "bytes_per_doc": round(per_doc),
        "redis_bytes_per_doc": round(grown(docs, "redis") / n),
        "raw": {"conns": conns, "docs": docs},
    }
    _log(
        f"{server} memory: {res['bytes_per_conn']} B/conn, {res['bytes_per_doc']} B/doc "
        f"(+{res['redis_bytes_per_doc']} B/doc in Redis)"
    )
    return res
