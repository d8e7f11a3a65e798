"""A thousand clients at once: a reconnect storm after a deploy, or a load balancer's health
checks. Every request that needs Redis waits for a connection of the pool instead of being
refused, so each hello gets its `ready` and each GET its 200."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support import ServerProcess

pytestmark = pytest.mark.slow

CLIENTS = 1000
# The whole storm, connections included, on a 2-core machine shared with other work.
DEADLINE_SECONDS = 30.0
HEAD_CHECK_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on a fresh embedded Redis; its file-descriptor limit is inherited from here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * CLIENTS + 256  # our sockets and the server's, with room for Redis and the rest
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    process = ServerProcess(
        None,
        tmp_path_factory.mktemp("storm"),
        extra_args=("--log-level", "warning", "--head-check-seconds", str(HEAD_CHECK_SECONDS)),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def _ready(ws: ClientConnection) -> str:
    """What answered this client's hello: ``ready``, an error code, or a close code."""
    try:
        async for frame in ws:
            decoded = json.loads(frame)
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if message["type"] == "ready":
                    return "ready"
                if message["type"] == "error":
                    return str(message["code"])
        return f"closed {ws.close_code}"
    except Exception as e:
        return type(e).__name__


async def _pong(ws: ClientConnection) -> str:
    """``pong`` when the connection is still open and served."""
    try:
        await ws.send(json.dumps({"type": "ping"}))
        async for frame in ws:
            decoded = json.loads(frame)
            if any(m["type"] == "pong" for m in (decoded if isinstance(decoded, list) else [decoded])):
                return "pong"
        return f"closed {ws.close_code}"
    except Exception as e:
        return type(e).__name__


async def _storm_of_hellos(ws_url: str, server_pid: int) -> Counter[str]:
    # Every client on a document of its own, so every hello opens a document (reads from Redis,
    # subscribes): the most Redis calls a storm of hellos can ask for at once. The connections
    # are opened first; the hellos are sent while the server is paused (SIGSTOP), so it reads
    # them all in one turn of its event loop, as after a pause or a burst from a balancer.
    connections = await asyncio.gather(
        *(connect(f"{ws_url}/ws/storm-{i}", open_timeout=DEADLINE_SECONDS) for i in range(CLIENTS))
    )
    try:
        os.kill(server_pid, signal.SIGSTOP)
        try:
            for i, ws in enumerate(connections):
                await ws.send(json.dumps({"type": "hello", "client": f"client-{i}"}))
            await asyncio.sleep(0.2)  # the last frames reach the server's socket buffers
        finally:
            os.kill(server_pid, signal.SIGCONT)
        answers = Counter(
            await asyncio.wait_for(asyncio.gather(*(_ready(ws) for ws in connections)), DEADLINE_SECONDS)
        )
        # Held open through two head checks, each of which asks Redis for the head of all 1,000
        # documents in the same instant.
        await asyncio.sleep(2.5 * HEAD_CHECK_SECONDS)
        pongs = await asyncio.wait_for(asyncio.gather(*(_pong(ws) for ws in connections)), DEADLINE_SECONDS)
        answers.update(f"then {p}" for p in pongs if p != "pong")
    finally:
        await asyncio.gather(*(ws.close() for ws in connections))
    return answers


async def _storm_of_gets(http_url: str, doc: str) -> Counter[str]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(DEADLINE_SECONDS)
    async with httpx.AsyncClient(base_url=http_url, limits=limits, timeout=timeout) as client:

        async def get() -> str:
            try:
                response = await client.get(f"/docs/{doc}")
            except httpx.HTTPError as e:
                return type(e).__name__
            return str(response.status_code)

        answers = await asyncio.wait_for(asyncio.gather(*(get() for _ in range(CLIENTS))), DEADLINE_SECONDS)
    return Counter(answers)


def test_a_thousand_hellos_at_once_are_all_ready(server: ServerProcess) -> None:
    started = time.monotonic()
    assert server.pid is not None
    answers = asyncio.run(_storm_of_hellos(server.ws_url, server.pid))
    assert answers == Counter({"ready": CLIENTS}), f"{dict(answers)} in {time.monotonic() - started:.1f} s"
    assert server.healthz() == 200
    # nor was any call to Redis refused meanwhile (a failed head check is only logged)
    assert "unavailable" not in server.log_tail(1_000_000), server.log_tail(1000)


def test_a_thousand_gets_at_once_are_all_answered(server: ServerProcess) -> None:
    started = time.monotonic()
    answers = asyncio.run(_storm_of_gets(server.http_url, "x"))
    assert answers == Counter({"200": CLIENTS}), f"{dict(answers)} in {time.monotonic() - started:.1f} s"
