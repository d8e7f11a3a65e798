"""Load and fault run: N clients editing D documents, then an audit of every acknowledged edit.

    .venv/bin/python scripts/loadtest.py --clients 32 --docs 4 --duration 30 --kill-server-every 5

Without --url it starts its own Redis (append-only file on) and --servers processes of
`tandem serve` on it, on free 127.0.0.1 ports, and removes them afterwards. It prints edits/s, the
ack latency of edits (p50/p95/p99), and the three numbers that matter: acknowledged edits lost,
edits duplicated, replicas not converged. The exit status is 1 when any of them is not zero (or an
edit was refused or never confirmed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tandem.testing.cluster import running_cluster
from tandem.testing.harness import Deployment, document
from tandem.testing.load import Counters, LoadConfig, LoadReport, run_load

BAR = 30


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32, help="editing clients (default 32)")
    p.add_argument("--docs", type=int, default=4, help="documents they share (default 4)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of editing (default 30)")
    p.add_argument("--max-edits", type=int, default=0, help="edits per client at most (default: no cap)")
    p.add_argument("--rate", type=float, default=10.0, help="edits per second per client (default 10)")
    p.add_argument("--delete-share", type=float, default=0.2, help="share of edits that delete (default 0.2)")
    p.add_argument("--seed", type=int, default=1, help="random seed; also names the documents")
    p.add_argument(
        "--url",
        action="append",
        default=[],
        help="ws://host:port of a running server (repeat for several); default: start them",
    )
    p.add_argument("--servers", type=int, default=2, help="server processes to start (default 2)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="start a 3-master Redis Cluster instead of one Redis (not with --kill-redis-every)",
    )
    p.add_argument(
        "--kill-server-every",
        type=float,
        default=0.0,
        metavar="S",
        help="kill -9 one server process every S seconds, in turn, and restart it",
    )
    p.add_argument(
        "--kill-redis-every",
        type=float,
        default=0.0,
        metavar="S",
        help="kill -9 Redis every S seconds and restart it from its append-only file",
    )
    p.add_argument(
        "--redis-down",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds Redis stays down each time (default 1)",
    )
    p.add_argument(
        "--cut-every",
        type=float,
        default=0.0,
        metavar="S",
        help="cut a random client's connection every S seconds",
    )
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for `tandem serve`")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the data and logs of the processes started here in DIR (default: removed)",
    )
    p.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.url and (args.kill_server_every or args.kill_redis_every or args.cluster):
        p.error("--kill-server-every, --kill-redis-every and --cluster need servers started here (no --url)")
    if args.cluster and args.kill_redis_every:
        p.error("--kill-redis-every needs the single Redis; it is not offered with --cluster")
    return args


def progress_bar(duration: float, quiet: bool) -> Callable[[Counters], None]:
    last = [0.0]

    def show(c: Counters) -> None:
        now = time.monotonic()
        if quiet or now - last[0] < 0.25:
            return
        last[0] = now
        elapsed = now - c.started
        done = min(1.0, elapsed / duration)
        faults = sum(c.faults.values())
        sys.stderr.write(
            f"\r[{'#' * int(done * BAR):<{BAR}}] {elapsed:5.1f}/{duration:.0f} s  "
            f"{c.edits} edits  {c.acked / max(elapsed, 1e-9):6.0f} acked/s  {faults} faults "
        )
        sys.stderr.flush()

    return show


Faults = dict[str, tuple[float, Callable[[], Awaitable[str]]]]


def faults_for(args: argparse.Namespace, d: Deployment) -> Faults:
    faults: Faults = {}
    turn = [0]

    async def kill_server() -> str:
        server = d.servers[turn[0] % len(d.servers)]
        turn[0] += 1
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(random.uniform(0.1, 0.5))
        await asyncio.to_thread(server.start)
        return f"kill -9 server :{server.port}"

    async def kill_redis() -> str:
        await asyncio.to_thread(d.kill_redis)
        await asyncio.sleep(args.redis_down)
        await asyncio.to_thread(d.restart_redis)
        return "kill -9 redis"

    if args.kill_server_every:
        faults["server kill -9"] = (args.kill_server_every, kill_server)
    if args.kill_redis_every:
        faults["redis kill -9"] = (args.kill_redis_every, kill_redis)
    return faults


def render(report: LoadReport) -> str:
    a, lat = report.audit, report.latency_ms
    lines = [
        f"clients {report.config.clients}, documents {report.config.docs}, {report.seconds:.1f} s",
        f"edits {report.edits}, acknowledged {report.acked}: {report.edits_per_second:.0f} edits/s",
        f"ack latency ms: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}",
        "faults: " + (", ".join(f"{k} x{v}" for k, v in report.faults.items()) or "none"),
        f"lost acknowledged edits: {a.lost}",
        f"duplicated edits: {a.duplicated}",
        f"replicas not converged: {a.diverged}",
        f"garbled: {a.garbled}, refused: {report.refused}, never confirmed: {report.unconfirmed}",
        *a.details,
        *(f"clients met {kind!r} x{n}" for kind, n in sorted(report.troubles.items())),
        "FAIL" if report.failed else "OK",
    ]
    return "\n".join(lines)


def as_json(report: LoadReport) -> dict[str, object]:
    a = report.audit
    return {
        "config": vars(report.config),
        "seconds": report.seconds,
        "edits": report.edits,
        "acked": report.acked,
        "edits_per_second": report.edits_per_second,
        "latency_ms": report.latency_ms,
        "faults": report.faults,
        "lost": a.lost,
        "duplicated": a.duplicated,
        "diverged": a.diverged,
        "garbled": a.garbled,
        "refused": report.refused,
        "unconfirmed": report.unconfirmed,
        "details": list(a.details),
        "troubles": report.troubles,
        "failed": report.failed,
    }


async def run(args: argparse.Namespace, urls: list[str], http_url: str, d: Deployment | None) -> LoadReport:
    config = LoadConfig(
        clients=args.clients,
        docs=args.docs,
        duration=args.duration,
        max_edits=args.max_edits,
        rate=args.rate,
        delete_share=args.delete_share,
        seed=args.seed,
        cut_every=args.cut_every,
    )

    async def text_of(doc: str) -> str:
        return str((await asyncio.to_thread(document, http_url, doc))["text"])

    report = await run_load(
        config, urls, text_of, faults_for(args, d) if d else None, progress_bar(args.duration, args.quiet)
    )
    if not args.quiet:
        sys.stderr.write("\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.url:
        urls = [u.rstrip("/") for u in args.url]
        report = asyncio.run(run(args, urls, urls[0].replace("ws", "http", 1), None))
    else:
        with tempfile.TemporaryDirectory(prefix="tandem-load-") as tmp, contextlib.ExitStack() as stack:
            root = args.keep or Path(tmp)
            extra, redis_url = tuple(args.server_arg), None
            if args.cluster:
                redis_url = stack.enter_context(running_cluster(root / "cluster")).url
                extra += ("--redis-cluster",)
            d = stack.enter_context(Deployment(root, args.servers, redis_url=redis_url, extra_args=extra))
            report = asyncio.run(run(args, d.ws_urls, d.http_url, d))
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(as_json(report), indent=2))
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
