"""Processes for fault injection: `tandem serve` over a given Redis, which can be killed and restarted.

The server runs as a real child process (uvicorn, its own event loop), so kill -9 is a real crash:
no finally block runs, sockets drop without a close frame, in-flight commits stop wherever they are.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tandem.server.redis_process import free_port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too, only a dead socket raises OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def document(http_url: str, doc: str) -> dict[str, Any]:
    """`GET /docs/{doc}`: rev, text and hash at the head."""
    status, body = http_get(f"{http_url}/docs/{doc}")
    assert status == 200, f"GET /docs/{doc}: {status} {body[:300]!r}"
    result: dict[str, Any] = json.loads(body)
    return result


def assert_verified(http_url: str, doc: str) -> None:
    """`GET /docs/{doc}/verify` recomputes the integrity chain; it must hold end to end."""
    status, body = http_get(f"{http_url}/docs/{doc}/verify")
    assert status == 200 and json.loads(body)["ok"] is True, f"verify {doc}: {status} {body[:300]!r}"


class ServerProcess:
    """One `tandem serve` process on a fixed 127.0.0.1 port, kept across restarts."""

    def __init__(self, redis_url: str | None, data_dir: Path, *, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"serve-{self.port}.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "tandem.server.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.redis_url is not None:
            args += ["--redis-url", self.redis_url]
        return args + list(self.extra_args)

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        env.pop("REDIS_URL", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            cwd=Path(__file__).resolve().parents[2])
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tandem serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if http_get(self.http_url + "/healthz", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"tandem serve not healthy within {timeout} s: {self.log_tail()}")
            time.sleep(0.05)

    def healthz(self) -> int:
        return http_get(self.http_url + "/healthz", timeout=2.0)[0]

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Deployment:
    """`servers` processes of `tandem serve` sharing one Redis started here (append-only file on).

    The Redis is a `RedisProcess` on a 127.0.0.1 port, so it can be killed and restarted on the same
    port and data while the servers keep running; or a given `redis_url` (a cluster, say) left alone.
    """

    def __init__(self, root: Path, servers: int = 2, *, redis_url: str | None = None,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        from tandem.server.redis_process import RedisProcess

        self.root = root
        self.redis: RedisProcess | None = None
        if redis_url is None:
            # Not tied to the starting thread's life (PR_SET_PDEATHSIG follows the thread, and a
            # restart may come from a worker thread); stop() ends it.
            self.redis = RedisProcess(root / "redis", port=0, die_with_parent=False)
            redis_url = self.redis.url
        self.redis_url = redis_url
        self.servers = [ServerProcess(redis_url, root / f"server-{i}", extra_args=extra_args, env=env)
                        for i in range(servers)]

    @property
    def ws_urls(self) -> list[str]:
        return [s.ws_url for s in self.servers]

    @property
    def http_url(self) -> str:
        return self.servers[0].http_url

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
        for server in self.servers:
            server.start()

    def kill_redis(self) -> None:
        assert self.redis is not None, "this deployment does not own its Redis"
        self.redis.kill()

    def restart_redis(self) -> None:
        assert self.redis is not None, "this deployment does not own its Redis"
        self.redis.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
