"""Starting and stopping the servers under test: ShareDB and ot.js from the kit, and Tandem.

`sharedb-pg` is the kit's ShareDB on PostgreSQL (sharedb-pg-server.js), as ShareDB is deployed: a
throwaway PostgreSQL per run, set up as the kit's pg-setup.sh does (Debian's postgresql, run as the
postgres user, `synchronous_commit=off`), listening on 127.0.0.1 and on a socket in its temp dir.

Tandem runs in its real configuration: `tandem serve` with a fresh data dir starts its embedded
Redis with the append-only file on. For the multi-process run, `tandem serve --workers N` runs N
processes on one port and that one Redis. Tandem's processes are those of the tests
(`tandem.testing.harness`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tandem.server.redis_process import RedisProcess
from tandem.testing.harness import ServerProcess, free_port

from .procs import descendants, stop_group

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0

# name -> (kit script, loadgen adapter)
NODE_PEERS = {
    "sharedb": ("sharedb-server.js", "sharedb"),
    "sharedb-pg": ("sharedb-pg-server.js", "sharedb"),
    "otjs": ("ot-server.js", "otjs"),
}
SERVERS = ("sharedb", "sharedb-pg", "otjs", "tandem")
PG_USER = "postgres"


@dataclass
class Running:
    """Server processes of one measured run (fresh for every run)."""

    name: str
    adapter: str
    urls: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # a kit server
    tandems: list[ServerProcess] = field(default_factory=list)
    redis: RedisProcess | None = None  # the Redis Tandem's processes share, if not embedded
    scratch: Path | None = None
    workers: int = 1  # `tandem serve --workers`: several processes behind each URL
    postgres: Postgres | None = None  # the database of sharedb-pg

    def main_pids(self) -> list[int]:
        pids = [p.pid for p in self.procs] + [s.pid for s in self.tandems if s.pid is not None]
        if self.postgres is not None and (pid := self.postgres.pid()) is not None:
            pids.append(pid)  # with the backends it has so far (found as descendants)
        return pids

    def pids(self) -> list[int]:
        """Every process doing server work, Redis included (its CPU is server CPU)."""
        out = self.main_pids()
        if self.redis is not None and self.redis.process is not None:
            out.append(self.redis.process.pid)
        return out + [child for pid in list(out) for child in descendants(pid)]

    def stop(self) -> None:
        for proc in self.procs:
            stop_group(proc)
        for server in self.tandems:
            server.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start Tandem's processes again on the same data and ports."""
        for server in self.tandems:
            server.stop()
            server.start(START_TIMEOUT_S)


class Postgres:
    """A throwaway PostgreSQL in a temp dir, prepared for sharedb-postgres as the kit's pg-setup.sh does."""

    def __init__(self, kit: Path, logs: Path) -> None:
        self.kit = kit
        self.dir = Path(tempfile.mkdtemp(prefix="tandem-bench-pg-"))
        self.port = free_port()
        self.log = logs / f"postgres-{self.port}.log"
        self.started = False

    @staticmethod
    def bin_dir() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not found:
            raise RuntimeError("sharedb-pg needs PostgreSQL: apt-get install -y postgresql")
        return found[-1]

    def _as_pg(self, *cmd: str) -> None:
        as_user = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        with self.log.open("ab") as out:
            subprocess.run(
                [*as_user, *cmd], check=True, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _sql(self, db: str, *args: str) -> None:
        self._as_pg("psql", "-h", str(self.dir), "-p", str(self.port), "-U", PG_USER, "-d", db, "-q", *args)

    def start(self) -> None:
        bin_dir = self.bin_dir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER)
        data = self.dir / "data"
        self._as_pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER)
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c synchronous_commit=off -c max_connections=200"
        )
        self.started = True
        self._as_pg(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            options,
            "start",
        )
        self._sql("postgres", "-c", "create database sharedb")
        structure = self.kit / "node_modules" / "sharedb-postgres" / "structure.sql"
        self._sql("sharedb", "-f", str(structure))
        self._sql("sharedb", "-c", "alter table snapshots add column if not exists metadata jsonb")

    def env(self) -> dict[str, str]:
        return {"PGHOST": str(self.dir), "PGPORT": str(self.port), "PGDATABASE": "sharedb", "PGUSER": PG_USER}

    def pid(self) -> int | None:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.started:
            self.started = False
            try:
                self._as_pg(
                    str(self.bin_dir() / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"
                )
            except subprocess.CalledProcessError:
                pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


def start_node_peer(name: str, kit: Path, logs: Path) -> Running:
    script, adapter = NODE_PEERS[name]
    postgres = None
    env = None
    if name == "sharedb-pg":
        postgres = Postgres(kit, logs)
        try:
            postgres.start()
        except BaseException:
            postgres.stop()
            raise
        env = {**os.environ, **postgres.env()}
    port = free_port()
    log = logs / f"{name}-{port}.log"
    try:
        with log.open("ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                ["node", script, str(port)],
                cwd=kit,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _await(lambda: "ready" in log.read_text(errors="replace").split(), proc, f"{name} server", log)
    except BaseException:
        if postgres is not None:
            postgres.stop()
        raise
    return Running(name, adapter, [f"ws://127.0.0.1:{port}"], [proc], postgres=postgres)


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


def start_tandem(
    logs: Path,
    processes: int = 1,
    extra_args: list[str] | None = None,
    shared_redis: bool = False,
    workers: int = 1,
) -> Running:
    """One process with its embedded Redis, or N >= 1 processes on one Redis started here; with
    ``workers``, each is `tandem serve --workers N` (its workers share its port and Redis)."""
    scratch = Path(tempfile.mkdtemp(prefix="tandem-bench-data-"))
    running = Running("tandem", "tandem", [], scratch=scratch, workers=workers)
    if workers > 1:
        extra_args = [*(extra_args or []), "--workers", str(workers)]
    try:
        redis_url = None
        if shared_redis or processes > 1:
            # the embedded Redis's own setup (server/redis_process.py): unix socket, AOF, everysec
            running.redis = RedisProcess(scratch / "redis")
            running.redis.start(timeout=START_TIMEOUT_S)
            redis_url = running.redis.url
        for i in range(processes):
            server = ServerProcess(
                redis_url, scratch / f"data-{i}", extra_args=tuple(extra_args or ()), log_dir=logs
            )
            running.tandems.append(server)
            server.start(START_TIMEOUT_S)
            running.urls.append(server.ws_url)
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
    workers: int = 1,
) -> Running:
    if name == "tandem":
        return start_tandem(logs, processes, tandem_args, shared_redis, workers)
    if processes != 1:
        raise ValueError(f"{name}: the kit runs one process only")
    return start_node_peer(name, kit, logs)
