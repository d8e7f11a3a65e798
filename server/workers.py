"""`tandem serve --workers N`: N server processes on one port and one Redis, under a supervisor.

The supervisor starts the embedded Redis (unless a Redis URL is given), opens one listening socket
per worker on the same port with SO_REUSEPORT (the kernel spreads new connections over them by
address hash, where one shared socket lets whichever worker wakes first take a whole burst), and
runs each worker as `tandem serve --redis-url ...` on its socket: exactly the deployment of several
processes on one Redis that every guarantee already covers. A socket outlives its worker, so
connections that arrive while a worker restarts wait in its backlog instead of being refused.

A worker that dies is started again after a backoff. SIGTERM and SIGINT are passed on to the
workers (each drains as `tandem serve` does); Redis stops after the last worker has exited.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from tandem.server.auth import access_notice
from tandem.server.redis_process import RedisProcess
from tandem.server.settings import Settings

FIRST_BACKOFF = 0.1  # a crash is rare: come back at once, but not in a tight loop if it repeats
MAX_BACKOFF = 5.0
STABLE_SECONDS = 10.0  # a worker that ran this long before dying starts the backoff afresh
TICK = 0.05
# past the drain: uvicorn's graceful shutdown (5 s) and the lifespan's, before a SIGKILL
STOP_GRACE = 15.0
PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    index: int
    sock: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port. A first plain bind finds the port (0: a free one)
    and fails if anyone listens there already, which a SO_REUSEPORT bind of our own user would not."""
    from tandem.server.cli import bind

    probe = bind(host, port)
    port = probe.getsockname()[1]
    probe.close()
    return [bind(host, port, reuse_port=True) for _ in range(count)]


def _die_with_parent() -> None:
    # a supervisor killed with -9 must not leave workers serving a port nobody restarts
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, settings: Settings, argv: Sequence[str], socks: list[socket.socket], redis_url: str):
        self.settings = settings
        self.argv = list(argv)
        self.redis_url = redis_url
        self.workers = [Worker(i, s) for i, s in enumerate(socks, start=1)]
        self.signals: list[int] = []
        self.stop_deadline: float | None = None

    def command(self, worker: Worker) -> list[str]:
        # later flags win: the user's own, made a single process on the shared socket and Redis
        return [
            sys.executable,
            "-m",
            "tandem.server.cli",
            "serve",
            *self.argv,
            "--workers",
            "1",
            "--redis-url",
            self.redis_url,
            "--listen-fd",
            str(worker.sock.fileno()),
            "--worker-index",
            str(worker.index),
        ]

    def start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(
            self.command(worker),
            stdin=subprocess.DEVNULL,
            pass_fds=(worker.sock.fileno(),),
            # its own group: a terminal's Ctrl-C reaches the supervisor, which passes it on once
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        worker.started = time.monotonic()
        worker.restart_at = None

    def on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)  # handled by the loop, never in the middle of starting a worker

    def run(self) -> int:
        for worker in self.workers:
            self.start(worker)
        while True:
            now = time.monotonic()
            while self.signals:
                self._forward(self.signals.pop(0), now)
            if self.stop_deadline is None:
                for worker in self.workers:
                    self._tend(worker, now)
            elif not any(w.alive for w in self.workers):
                return 0
            elif now > self.stop_deadline:
                for worker in self.workers:
                    if worker.alive and worker.process is not None:
                        log(f"worker {worker.index} (pid {worker.process.pid}) did not stop; killing it")
                        worker.process.kill()
                self.stop_deadline = now + STOP_GRACE
            time.sleep(TICK)

    def _forward(self, sig: int, now: float) -> None:
        if self.stop_deadline is None:
            log(f"{signal.Signals(sig).name}: stopping {len(self.workers)} workers")
            self.stop_deadline = now + self.settings.drain_seconds + STOP_GRACE
        for worker in self.workers:
            if worker.alive and worker.process is not None:
                worker.process.send_signal(sig)  # a second signal skips the drain, as in a worker

    def _tend(self, worker: Worker, now: float) -> None:
        if worker.alive or worker.process is None:
            return
        if worker.restart_at is None:
            ran = now - worker.started
            if ran >= STABLE_SECONDS:
                worker.backoff = FIRST_BACKOFF
            delay, worker.backoff = worker.backoff, min(worker.backoff * 2, MAX_BACKOFF)
            worker.restart_at = now + delay
            log(
                f"worker {worker.index} (pid {worker.process.pid}) exited with {worker.process.returncode}"
                f" after {ran:.1f} s; starting it again in {delay:.1f} s"
            )
        elif now >= worker.restart_at:
            self.start(worker)


def log(message: str) -> None:
    print(f"tandem serve: {message}", file=sys.stderr, flush=True)


def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Run ``settings.workers`` workers on one port until SIGTERM or SIGINT; the exit status."""
    try:
        socks = listen_sockets(settings.host, settings.port, settings.workers)
    except OSError as e:
        print(f"tandem serve: cannot listen on {settings.host}:{settings.port}: {e}", file=sys.stderr)
        return 1
    redis: RedisProcess | None = None
    url = settings.redis_url
    if url is None:
        redis = RedisProcess(settings.data_dir, fsync=settings.fsync)
        redis.start()
        url = redis.url
    supervisor = Supervisor(settings, argv, socks, url)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    port = socks[0].getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"listening on http://{shown_host}:{port} with {settings.workers} workers", flush=True)
    print(access_notice(settings.secret, settings.allowed_origins), flush=True)
    try:
        return supervisor.run()
    finally:
        for worker in supervisor.workers:  # only when the loop itself failed
            if worker.alive and worker.process is not None:
                worker.process.kill()
                worker.process.wait()
        if redis is not None:
            redis.stop()  # last: a draining worker still commits
