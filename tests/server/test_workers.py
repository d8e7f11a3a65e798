"""`tandem serve --workers 2`: two processes on one port and one embedded Redis, one killed with -9
while clients type; the supervisor starts it again, every edit lands exactly once, all converge."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tandem.testing.load import LoadConfig, run_load
from tests.support import ServerProcess, assert_verified, document, http_get

pytestmark = pytest.mark.slow


def _parent(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def workers_of(supervisor: int) -> list[int]:
    """The supervisor's children but its redis-server."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _parent(int(entry)) == supervisor:
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() != "redis-server":
                    out.append(int(entry))
            except OSError:
                continue
    return sorted(out)


def connections_by_worker(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on ``port`` each process holds (from /proc/net/tcp and its fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            links = []
        counts[pid] = sum(1 for link in links if link in inodes)
    return counts


def wait_for_workers(supervisor: int, count: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(pids := workers_of(supervisor)) != count:
        assert time.monotonic() < deadline, f"workers of {supervisor}: {pids}"
        time.sleep(0.05)
    return pids


def test_kill_9_of_one_worker_while_clients_type(tmp_path: Path) -> None:
    server = ServerProcess(
        None,
        tmp_path,
        extra_args=("--workers", "2", "--head-check-seconds", "0.5", "--log-level", "warning"),
    )
    with server:
        assert server.pid is not None
        supervisor = server.pid
        first = wait_for_workers(supervisor, 2)
        spread: list[dict[int, int]] = []
        killed: list[int] = []

        async def kill_one() -> str:
            pids = await asyncio.to_thread(wait_for_workers, supervisor, 2)
            spread.append(connections_by_worker(pids, server.port))
            victim = pids[len(killed) % 2]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            # the supervisor notices and starts another on the same socket
            await asyncio.to_thread(wait_for_workers, supervisor, 2)
            return "killed"

        health: list[int | str] = []
        done = threading.Event()

        def poll_health() -> None:
            while not done.is_set():
                try:
                    health.append(http_get(server.http_url + "/healthz", timeout=5.0)[0])
                except OSError as e:
                    health.append(repr(e))
                time.sleep(0.1)

        poller = threading.Thread(target=poll_health)
        poller.start()

        async def text_of(doc: str) -> str:
            return str((await asyncio.to_thread(document, server.http_url, doc))["text"])

        config = LoadConfig(clients=12, docs=3, duration=7.0, rate=15, seed=31, drain_timeout=30)
        try:
            report = asyncio.run(
                asyncio.wait_for(
                    run_load(config, [server.ws_url], text_of, {"worker kill -9": (2.0, kill_one)}), 120
                )
            )
        finally:
            done.set()
            poller.join()

        assert len(killed) >= 2, report.faults
        after = workers_of(supervisor)
        assert len(after) == 2 and not set(killed) & set(after) and after != first
        # both workers served clients through the one port
        assert any(sum(1 for n in s.values() if n > 0) == 2 for s in spread), spread
        assert report.acked > 0 and report.acked == report.edits, report
        assert report.audit.ok, report.audit.details
        assert (report.refused, report.unconfirmed) == (0, 0), report
        for doc in range(config.docs):
            assert_verified(server.http_url, f"load-{config.seed}-{doc}")
        # /healthz answered throughout: a probe that meets the dead worker's socket waits for its restart
        failed = [h for h in health if h != 200]
        assert len(health) > 20 and len(failed) <= 2, failed
    assert not workers_of(supervisor), "the workers stop with the supervisor"


def test_sigterm_stops_every_worker_and_redis(tmp_path: Path) -> None:
    server = ServerProcess(None, tmp_path, extra_args=("--workers", "2", "--log-level", "warning"))
    server.start()
    assert server.pid is not None and server.process is not None
    supervisor = server.pid
    pids = wait_for_workers(supervisor, 2)
    seen = {http_get(server.http_url + "/healthz")[0] for _ in range(10)}
    assert seen == {200}
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    # the supervisor waited for its workers, then stopped the embedded Redis (all name tmp_path)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and str(tmp_path) in _cmdline(int(p))]
    assert not leftovers and not any(Path(f"/proc/{pid}").exists() for pid in pids)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
