"""Hostile-input run: what one client can make a server spend, and what everyone else feels.

    .venv/bin/python scripts/hostile.py                     # this checkout
    .venv/bin/python scripts/hostile.py --checkout DIR      # another checkout, for a before/after

It starts its own Redis and one `tandem serve` (the code of --checkout: its `tandem` package goes
first on the server's PYTHONPATH) with default settings except the rate limit, which would throttle
the attack itself. Then, each attack in turn, while a prober asks /healthz every 20 ms and edits
another document once every 50 ms:

- rebase: an op submitted at base 1 of a document whose history holds N ops of ~10,000 components;
- presence: cursors at revision 1 of that document (what a read-only token may send);
- verify: GET /docs/{doc}/verify of that document;
- readers: five connections that never read, each asking `fetch {from: 1}` of a document of large
  ops (1 MiB frames), and a sixth that reads every answer slowly;
- mute: 1,000 WebSockets that never say hello, held for 15 s.

For each it prints /healthz and edit latency (p50, p99, max), the server's peak RSS, and what the
attacker got back. Every loop is bounded in count and time; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import websockets

from tandem.testing.harness import ServerProcess, redis_process

INSERT_P = {"type": "Insert", "content": "p"}
WIDTH = 3333  # the heavy document's length is twice this; each op replaces every other letter
END = 2 * WIDTH - 1  # a cursor at the end: moving it walks every component of every op


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", type=Path, default=None, help="run the server of this checkout")
    p.add_argument("--heavy-ops", type=int, default=300, help="ops of ~10,000 components (default 300)")
    p.add_argument("--big-ops", type=int, default=40, help="ops of 1 MiB frames for the readers (default 40)")
    p.add_argument("--only", default="", help="comma-separated attacks to run (default: all)")
    return p.parse_args(argv)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Probe:
    """/healthz every 20 ms and an edit on a document of its own every 50 ms, timed; peak RSS."""

    def __init__(self, server: ServerProcess, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.health: list[float] = []
        self.edits: list[float] = []
        self.failures = 0
        self.peak_rss = 0
        self.doc = f"probe-{os.getpid()}-{time.monotonic_ns()}"
        self.seq = 0

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._health(stop), self._edit(stop), self._rss(stop))

    async def _timed(self, into: list[float], call: Callable[[], Awaitable[httpx.Response]]) -> None:
        start = time.perf_counter()
        try:
            response = await asyncio.wait_for(call(), 30)
            if response.status_code != 200:
                self.failures += 1
        except Exception:
            self.failures += 1
        into.append((time.perf_counter() - start) * 1000)

    async def _health(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._timed(self.health, lambda: self.http.get(f"{self.server.http_url}/healthz"))
            await asyncio.sleep(0.02)

    async def _edit(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.seq += 1
            body = {"client": "probe", "seq": self.seq, "base": self.seq - 1, "ops": [INSERT_P]}
            url = f"{self.server.http_url}/docs/{self.doc}/ops"
            await self._timed(self.edits, lambda: self.http.post(url, json=body))  # noqa: B023 - awaited here
            await asyncio.sleep(0.05)

    async def _rss(self, stop: asyncio.Event) -> None:
        assert self.server.pid is not None
        while not stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_bytes(self.server.pid))
            await asyncio.sleep(0.05)

    def report(self) -> dict[str, Any]:
        return {
            "healthz_ms": [
                round(pct(self.health, 0.5), 1),
                round(pct(self.health, 0.99), 1),
                round(max(self.health, default=0), 1),
            ],
            "edit_ms": [
                round(pct(self.edits, 0.5), 1),
                round(pct(self.edits, 0.99), 1),
                round(max(self.edits, default=0), 1),
            ],
            "probe_failures": self.failures,
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
        }


async def post(
    http: httpx.AsyncClient, url: str, doc: str, seq: int, base: int, ops: list[Any]
) -> httpx.Response:
    body = {"client": "builder", "seq": seq, "base": base, "ops": ops}
    return await http.post(f"{url}/docs/{doc}/ops", json=body, timeout=120)


def replacing(count: int) -> list[Any]:
    unit = [
        {"type": "Retain", "length": 1},
        {"type": "Insert", "content": "y"},
        {"type": "Delete", "length": 1},
    ]
    return [c for _ in range(count) for c in unit]


async def build_heavy(http: httpx.AsyncClient, url: str, doc: str, ops: int) -> None:
    assert (
        await post(http, url, doc, 1, 0, [{"type": "Insert", "content": "x" * (2 * WIDTH)}])
    ).status_code == 200
    for seq in range(2, ops + 2):
        response = await post(http, url, doc, seq, seq - 1, replacing(WIDTH))
        assert response.status_code == 200, response.text


async def build_big(http: httpx.AsyncClient, url: str, doc: str, ops: int) -> None:
    """``ops`` revisions of ~1 MiB frames that leave the text short: insert, then delete."""
    chunk = "b" * (1_000_000 - 200)
    for n in range(1, ops + 1, 2):
        assert (
            await post(http, url, doc, n, n - 1, [{"type": "Insert", "content": chunk}])
        ).status_code == 200
        assert (
            await post(http, url, doc, n + 1, n, [{"type": "Delete", "length": len(chunk)}])
        ).status_code == 200


async def attack_rebase(ws_url: str, doc: str) -> str:
    async with websockets.connect(f"{ws_url}/ws/{doc}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "client": "attacker"}))
        await _until(ws, "ready")
        await ws.send(
            json.dumps({"type": "op", "seq": 1, "base": 1, "ops": [{"type": "Insert", "content": "!"}]})
        )
        answer = await _until(ws, "ack", "error")
        return f"{answer['type']} {answer.get('code', '')}".strip()


async def attack_presence(ws_url: str, doc: str, count: int = 20) -> str:
    async with websockets.connect(f"{ws_url}/ws/{doc}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "client": "watcher"}))
        await _until(ws, "ready")
        for _ in range(count):
            await ws.send(json.dumps({"type": "presence", "rev": 1, "cursor": {"anchor": END, "head": END}}))
        await ws.send(json.dumps({"type": "ping"}))
        await _until(ws, "pong", timeout=300)
        return f"{count} cursors at revision 1 sent and answered"


async def attack_verify(http: httpx.AsyncClient, url: str, doc: str) -> str:
    response = await http.get(f"{url}/docs/{doc}/verify", timeout=300)
    return f"{response.status_code} ok={response.json().get('ok')}"


async def attack_readers(ws_url: str, doc: str) -> str:
    sockets = []
    closed = 0
    try:
        for i in range(5):
            ws = await websockets.connect(f"{ws_url}/ws/{doc}", max_size=None, max_queue=1)
            sockets.append(ws)
            await ws.send(json.dumps({"type": "hello", "client": f"reader{i}"}))
            await _until(ws, "ready")
            await ws.send(json.dumps({"type": "fetch", "from": 1}))
        await asyncio.sleep(10)  # never read: whatever the server queues stays queued
        for ws in sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_drain(ws), 10)
            closed += ws.close_code is not None
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    return f"{closed} of 5 readers closed by the server"


async def attack_mute(ws_url: str, count: int = 1000) -> str:
    sockets = []
    try:
        for i in range(count):
            try:
                sockets.append(await websockets.connect(f"{ws_url}/ws/mute-{i}", open_timeout=10))
            except Exception:
                break
        await asyncio.sleep(15)
        still = 0
        for ws in sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.recv(), 0.01)
            still += ws.close_code is None
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return f"{len(sockets)} opened, {still} still open after 15 s"


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def _until(ws: Any, *kinds: str, timeout: float = 120) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            decoded = json.loads(await ws.recv())
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if message.get("type") in kinds:
                    return message  # type: ignore[no-any-return]

    return await asyncio.wait_for(read(), timeout)


async def measured(server: ServerProcess, http: httpx.AsyncClient, attack: Awaitable[str]) -> dict[str, Any]:
    probe = Probe(server, http)
    stop = asyncio.Event()
    probing = asyncio.create_task(probe.run(stop))
    await asyncio.sleep(0.5)
    start = time.perf_counter()
    try:
        outcome = await attack
    except Exception as e:
        outcome = f"attack failed: {type(e).__name__}: {e}"
    seconds = time.perf_counter() - start
    await asyncio.sleep(0.5)
    stop.set()
    await probing
    return {"attacker": outcome, "attack_s": round(seconds, 2), **probe.report()}


async def main(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="tandem-hostile-"))
    redis = redis_process(root / "redis")
    env = {"PYTHONPATH": str(args.checkout.resolve())} if args.checkout else {}
    server = ServerProcess(
        redis.url, root / "server", extra_args=("--log-level", "error", "--ops-per-second", "100000"), env=env
    )
    only = set(filter(None, args.only.split(",")))
    try:
        server.start()
        baseline = rss_bytes(server.pid or 0)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as http:
            heavy, big = f"heavy-{os.getpid()}", f"big-{os.getpid()}"
            started = time.perf_counter()
            # a reader holds the heavy document open, so its recent ops stay in memory as in use
            holder = await websockets.connect(f"{server.ws_url}/ws/{heavy}", max_size=None)
            await holder.send(json.dumps({"type": "hello", "client": "holder"}))
            await _until(holder, "ready")
            reading = asyncio.create_task(_drain(holder))
            await build_heavy(http, server.http_url, heavy, args.heavy_ops)
            await build_big(http, server.http_url, big, args.big_ops)
            print(
                f"built: {args.heavy_ops} heavy ops and {args.big_ops} big ops in "
                f"{time.perf_counter() - started:.1f} s; server RSS {baseline / 2**20:.1f} -> "
                f"{rss_bytes(server.pid or 0) / 2**20:.1f} MB",
                flush=True,
            )
            attacks: dict[str, Callable[[], Awaitable[str]]] = {
                "rebase": lambda: attack_rebase(server.ws_url, heavy),
                "presence": lambda: attack_presence(server.ws_url, heavy),
                "verify": lambda: attack_verify(http, server.http_url, heavy),
                "readers": lambda: attack_readers(server.ws_url, big),
                "mute": lambda: attack_mute(server.ws_url),
            }
            for name, attack in attacks.items():
                if only and name not in only:
                    continue
                result = await measured(server, http, attack())
                print(json.dumps({"attack": name, **result}), flush=True)
            reading.cancel()
            await holder.close()
    finally:
        server.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse(None))))
