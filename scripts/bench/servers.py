"""Starting and stopping the servers under test: ShareDB and ot.js from the kit, and Tandem.

Tandem runs in its real configuration: `tandem serve` with a fresh data dir starts its embedded
Redis with the append-only file on. For the multi-process run, one Redis (the same binary and
durability) is started here and N `tandem serve --redis-url` processes share it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from procs import descendants, stop_group

from tandem.server.redis_process import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
TANDEM = ROOT / ".venv" / "bin" / "tandem"
START_TIMEOUT_S = 60.0

# name -> (kit script, loadgen adapter)
NODE_PEERS = {"sharedb": ("sharedb-server.js", "sharedb"), "otjs": ("ot-server.js", "otjs")}
SERVERS = ("sharedb", "otjs", "tandem")


@dataclass
class Running:
    """Server processes of one measured run (fresh for every run)."""

    name: str
    adapter: str
    urls: list[str]
    procs: list[subprocess.Popen[bytes]]
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)  # e.g. a shared Redis
    scratch: Path | None = None
    launches: list[tuple[list[str], Path, int]] = field(default_factory=list)  # command, log, port

    def pids(self) -> list[int]:
        """Every process doing server work, Redis included (its CPU is server CPU)."""
        out: list[int] = []
        for proc in [*self.procs, *self.helpers]:
            out.append(proc.pid)
            out.extend(descendants(proc.pid))
        return out

    def main_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in [*self.procs, *self.helpers]:
            stop_group(proc)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the server processes again on the same data and ports (Tandem only)."""
        for i, proc in enumerate(self.procs):
            stop_group(proc)
            cmd, log, port = self.launches[i]
            self.procs[i] = _spawn(cmd, log, ROOT, _tandem_env())
            _await(functools.partial(_healthy, port), self.procs[i], "tandem serve", log)


def _spawn(
    cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _await(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode} before it was ready; log: {log}\n"
                + log.read_text(errors="replace")[-2000:]
            )
        if time.monotonic() > deadline:
            stop_group(proc)
            raise RuntimeError(f"{what} not ready within {START_TIMEOUT_S:.0f} s; log: {log}")
        time.sleep(0.05)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def start_node_peer(name: str, kit: Path, logs: Path) -> Running:
    script, adapter = NODE_PEERS[name]
    port = free_port()
    log = logs / f"{name}-{port}.log"
    proc = _spawn(["node", script, str(port)], log, kit)
    _await(lambda: "ready" in log.read_text(errors="replace").split(), proc, f"{name} server", log)
    return Running(name, adapter, [f"ws://127.0.0.1:{port}"], [proc])


def _tandem_env() -> dict[str, str]:
    """The environment without TANDEM_* / REDIS_URL settings of the caller's shell."""
    return {k: v for k, v in os.environ.items() if not (k.startswith("TANDEM_") or k == "REDIS_URL")}


def start_tandem(
    logs: Path, processes: int = 1, extra_args: list[str] | None = None, shared_redis: bool = False
) -> Running:
    """One process with its embedded Redis, or N >= 1 processes on one Redis started here."""
    if not TANDEM.exists():
        raise SystemExit(f"bench: {TANDEM} not found; run ./scripts/test once to make the venv")
    scratch = Path(tempfile.mkdtemp(prefix="tandem-bench-data-"))
    extra = list(extra_args or [])
    env = _tandem_env()
    helpers: list[subprocess.Popen[bytes]] = []
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    running = Running("tandem", "tandem", urls, procs, helpers, scratch)
    try:
        redis_args: list[str] = []
        if shared_redis or processes > 1:
            # the embedded Redis's own setup (server/redis_process.py): unix socket, AOF, everysec
            redis = RedisProcess(scratch / "redis")
            redis.start(timeout=START_TIMEOUT_S)
            assert redis.process is not None
            helpers.append(redis.process)
            redis_args = ["--redis-url", redis.url]
        for i in range(processes):
            port = free_port()
            log = logs / f"tandem-{port}.log"
            cmd = [
                str(TANDEM),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(scratch / f"data-{i}"),
                *redis_args,
                *extra,
            ]
            proc = _spawn(cmd, log, ROOT, env)
            procs.append(proc)
            running.launches.append((cmd, log, port))
            _await(functools.partial(_healthy, port), proc, "tandem serve", log)
            urls.append(f"ws://127.0.0.1:{port}")
    except BaseException:
        running.stop()
        raise
    return running


def start(
    name: str,
    kit: Path,
    logs: Path,
    processes: int = 1,
    tandem_args: list[str] | None = None,
    shared_redis: bool = False,
) -> Running:
    if name == "tandem":
        return start_tandem(logs, processes, tandem_args, shared_redis)
    if processes != 1:
        raise ValueError(f"{name}: the kit runs one process only")
    return start_node_peer(name, kit, logs)
