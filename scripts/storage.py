"""Storage per op: what one-character ops cost in Redis and on disk, on a small document and on one
of about a million code points.

    .venv/bin/python scripts/storage.py [--checkout DIR] [--ops 2000] [--large 1000000]

Starts `tandem serve` from ``--checkout`` (default: this one) on a fresh embedded data directory,
then for each document: one insert of its text, ``--warmup`` one-character ops (past the first
snapshot, which the insert pays for), then ``--ops`` more over HTTP, one commit each, measured.
Reported per op: Redis memory (the sum of `MEMORY USAGE` of the document's keys), the
append-only file as it grew (no rewrite), and the file after a rewrite (BGREWRITEAOF before and
after, so only what the ops left behind counts); also the snapshots kept and how long a GET of the
head takes (the text rebuilt from the latest snapshot and the ops after it). The text is random
letters, so the rewritten file's compression does not flatter it. One JSON line per document.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent.parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", type=Path, default=HERE, help="the Tandem checkout to serve (default: this)")
    p.add_argument("--ops", type=int, default=2000, help="one-character ops per document (default 2000)")
    p.add_argument(
        "--warmup", type=int, default=100, help="ops before measuring, past the first snapshot (default 100)"
    )
    p.add_argument("--small", type=int, default=100, help="code points of the small document (default 100)")
    p.add_argument("--large", type=int, default=1_000_000, help="code points of the large one (default 1M)")
    return p.parse_args(argv)


class Server:
    """`tandem serve` of one checkout, on a fresh data directory, with its embedded Redis."""

    def __init__(self, checkout: Path, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not (k.startswith("TANDEM_") or k == "REDIS_URL")}
        env["PYTHONPATH"] = str(checkout)  # this checkout's tandem, not the installed one
        self.log = (data_dir / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tandem.server.cli", "serve", "--port", str(self.port)]
            + ["--data-dir", str(data_dir), "--log-level", "warning", "--ops-per-second", "100000"],
            cwd=checkout,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                self.http.close()
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    "the server did not start: " + (data_dir / "serve.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        self.redis: Any = redis.Redis(unix_socket_path=str(data_dir / "redis.sock"))

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        self.http.request(method, path, body=data, headers={"content-type": "application/json"})
        response = self.http.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def stop(self) -> None:
        self.http.close()
        self.redis.close()
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_bytes(server: Server, doc: str) -> int:
    keys = server.redis.keys("tandem:{" + doc + "}:*")
    return sum(server.redis.memory_usage(k, samples=0) or 0 for k in keys)


def aof_bytes(server: Server) -> int:
    # Redis 6 keeps one appendonly file (tandem.aof); 7 a directory: count whatever holds "aof"
    return sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file() and "aof" in p.name)


def rewrite(server: Server) -> int:
    """BGREWRITEAOF, settled: the size of the rewritten file."""
    while server.redis.info("persistence")["aof_rewrite_in_progress"]:
        time.sleep(0.05)
    server.redis.bgrewriteaof()
    time.sleep(0.1)
    while True:
        info = server.redis.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return aof_bytes(server)
        time.sleep(0.05)


def submit(server: Server, doc: str, seq: int, ops: list[dict[str, object]]) -> None:
    status, answer = server.request(
        "POST", f"/docs/{doc}/ops", {"client": "w", "seq": seq, "base": seq - 1, "ops": ops}
    )
    if status != 200:
        raise RuntimeError(f"op {seq} on {doc}: {status} {answer}")


def type_x(server: Server, doc: str, text_size: int, first_seq: int, count: int) -> None:
    """``count`` one-character ops at the end of a text of ``text_size``, from revision ``first_seq``."""
    for i in range(count):
        ops: list[dict[str, object]] = [
            {"type": "Retain", "length": text_size + i},
            {"type": "Insert", "content": "x"},
        ]
        submit(server, doc, first_seq + i, ops)


def measure(server: Server, doc: str, size: int, ops: int, warmup: int) -> dict[str, object]:
    text_size = size - ops - warmup  # the ops bring it to ``size``: within the default max-doc-length
    text = "".join(random.Random(size).choices(string.ascii_letters, k=text_size))
    submit(server, doc, 1, [{"type": "Insert", "content": text}])
    type_x(server, doc, text_size, 2, warmup)
    rewritten_before = rewrite(server)
    redis_before, aof_before = redis_bytes(server, doc), aof_bytes(server)
    started = time.monotonic()
    type_x(server, doc, text_size + warmup, warmup + 2, ops)
    seconds = time.monotonic() - started
    redis_after, aof_after = redis_bytes(server, doc), aof_bytes(server)
    rewritten_after = rewrite(server)
    started_get = time.monotonic()
    status, body = server.request("GET", f"/docs/{doc}")
    get_ms = (time.monotonic() - started_get) * 1000
    assert status == 200 and len(body["text"]) == size, (status, str(body)[:200])
    return {
        "doc": doc,
        "code_points": size,
        "ops": ops,
        "redis_bytes_per_op": round((redis_after - redis_before) / ops),
        "aof_bytes_per_op": round((aof_after - aof_before) / ops),
        "aof_bytes_per_op_after_rewrite": round((rewritten_after - rewritten_before) / ops),
        "redis_bytes": redis_after,
        "aof_bytes_rewritten": rewritten_after,
        "snapshots_kept": server.redis.zcard("tandem:{" + doc + "}:snaprevs"),
        "get_head_ms": round(get_ms, 1),
        "ops_per_second": round(ops / seconds),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="tandem-storage-") as tmp:
        server = Server(args.checkout.resolve(), Path(tmp))
        try:
            for doc, size in (("small", args.small + args.ops + args.warmup), ("large", args.large)):
                print(
                    json.dumps(
                        {"checkout": str(args.checkout), **measure(server, doc, size, args.ops, args.warmup)}
                    ),
                    flush=True,
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
