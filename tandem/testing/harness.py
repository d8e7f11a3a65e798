"""`tandem serve` as real child processes, for the tests, the load tool and the benchmark.

The server runs as a real child process (uvicorn, its own event loop), so kill -9 is a real crash:
no finally block runs, sockets drop without a close frame, in-flight commits stop wherever they are.
Each server leads its own process group, so a stop that has to force it also ends its embedded Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tandem.server.redis_process import RedisProcess


def free_port() -> int:
    """A 127.0.0.1 TCP port nobody listens on now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too, only a dead socket raises OSError."""
    return _http(urllib.request.Request(url, headers=headers or {}), timeout)


def http_post(
    url: str, body: bytes, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Status and body of a POST of JSON; HTTP errors are answers too."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json", **(headers or {})}
    )
    return _http(request, timeout)


def _http(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
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


def redis_process(data_dir: Path, *, die_with_parent: bool = True) -> RedisProcess:
    """A started redis-server over ``data_dir`` on a free 127.0.0.1 port; stop it when done.

    The port is kept across restarts. ``die_with_parent`` follows the starting thread, so a Redis
    that a worker thread may restart must not have it; stop it explicitly then.
    """
    process = RedisProcess(data_dir, port=free_port(), die_with_parent=die_with_parent)
    process.start()
    return process


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without its TANDEM_* and REDIS_URL settings, plus ``extra``: a server
    started here is configured by its arguments and ``extra`` only, whatever the caller's shell says."""
    inherited = {k: v for k, v in os.environ.items() if not (k.startswith("TANDEM_") or k == "REDIS_URL")}
    return {**inherited, **(extra or {})}


class ServerProcess:
    """One `tandem serve` process on a fixed 127.0.0.1 port, kept across restarts.

    ``redis_url=None`` lets the server start its embedded Redis in ``data_dir``. The log goes to
    ``log_dir`` (default ``data_dir``) as serve-<port>.log, appended to across restarts.
    """

    def __init__(
        self,
        redis_url: str | None,
        data_dir: Path,
        *,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = (log_dir or data_dir) / f"serve-{self.port}.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "tandem.server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.redis_url is not None:
            args += ["--redis-url", self.redis_url]
        return args + list(self.extra_args)

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=serve_env(self.env),
                cwd=self.data_dir,
                start_new_session=True,
            )
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
                self.kill()
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
        """kill -9 of the server alone: a crash, not a shutdown (its embedded Redis is told by the kernel)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the server closes its sockets and stops its Redis; after ``timeout``, SIGKILL to all."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

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

    def __init__(
        self,
        root: Path,
        servers: int = 2,
        *,
        redis_url: str | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.redis: RedisProcess | None = None
        if redis_url is None:
            # Not tied to the starting thread's life (PR_SET_PDEATHSIG follows the thread, and a
            # restart may come from a worker thread); stop() ends it.
            self.redis = RedisProcess(root / "redis", port=free_port(), die_with_parent=False)
            redis_url = self.redis.url
        self.redis_url = redis_url
        self.servers = [
            ServerProcess(redis_url, root / f"server-{i}", extra_args=extra_args, env=env)
            for i in range(servers)
        ]

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
