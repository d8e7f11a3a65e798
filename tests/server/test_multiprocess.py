"""Two server processes on one Redis, clients of one document on both: all converge."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from tandem.server.client import TandemClient
from tests.support import RedisProcess, ServerProcess, assert_verified, document, http_get, run


@pytest.fixture(scope="module")
def second(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        redis.url, tmp_path_factory.mktemp("second"), extra_args=("--log-level", "warning")
    )
    server.start()
    yield server
    server.stop()


def test_clients_on_two_processes_converge(tandem: ServerProcess, second: ServerProcess, doc: str) -> None:
    urls = [f"{s.ws_url}/ws/{doc}" for s in (tandem, second, tandem, second)]

    async def typist(client: TandemClient, rng: random.Random) -> None:
        for _ in range(30):
            n = len(client.text)
            if n > 2 and rng.random() < 0.3:
                client.delete(rng.randrange(n - 1), 1)
            else:
                client.insert(rng.randint(0, n), rng.choice("abcxyz"))
            await asyncio.sleep(rng.random() * 0.004)

    async def scenario() -> list[str]:
        clients = [await TandemClient(url, f"p{i}").connect() for i, url in enumerate(urls)]
        try:
            await asyncio.gather(*(typist(c, random.Random(i)) for i, c in enumerate(clients)))
            for c in clients:
                await c.synced(timeout=30)
            head = max(c.rev or 0 for c in clients)
            for c in clients:
                await c.wait_for(lambda c: c.rev == head, timeout=30)
            return [c.text for c in clients]
        finally:
            for c in clients:
                await c.close()

    texts = run(scenario(), timeout=90)
    assert len(set(texts)) == 1
    assert texts[0] == document(tandem.http_url, doc)["text"] == document(second.http_url, doc)["text"]
    assert_verified(second.http_url, doc)
    remote = [_metric(s, "tandem_remote_ops_total") for s in (tandem, second)]
    assert all(count > 0 for count in remote), f"each process learned of the other's ops: {remote}"


def test_an_op_committed_on_one_process_reaches_a_client_of_the_other(
    tandem: ServerProcess, second: ServerProcess, doc: str
) -> None:
    async def scenario() -> str:
        async with (
            TandemClient(f"{tandem.ws_url}/ws/{doc}", "w") as writer,
            TandemClient(f"{second.ws_url}/ws/{doc}", "r") as reader,
        ):
            writer.insert(0, "over there")
            await reader.wait_for(lambda c: c.text == "over there")
            return reader.text

    assert run(scenario()) == "over there"


def _metric(server: ServerProcess, name: str) -> float:
    _, body = http_get(f"{server.http_url}/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_an_op_whose_notification_was_lost_still_arrives(
    tandem: ServerProcess, redis: RedisProcess, doc: str
) -> None:
    """Another process commits and its notification never comes: the periodic head check finds it."""
    import redis as redis_sync

    from tandem.ot.integrity import genesis_hash, next_hash
    from tandem.ot.operation import Insert
    from tandem.ot.protocol import CommittedOp
    from tandem.server.store.base import encode
    from tandem.server.store.redis import Keys
    from tests.support import Raw

    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        ops = (Insert("silent"),)
        op_hash = next_hash(genesis_hash(doc), 1, "ghost", 1, ops)
        frame = encode(CommittedOp(1, "ghost", 1, ops, op_hash))
        keys = Keys(doc)
        client = redis_sync.Redis.from_url(redis.url)
        try:  # what the commit script does, minus the PUBLISH
            client.xadd(keys.log, {"r": frame}, id="1-1")
            client.hset(keys.clients, "ghost", f"1:1:{op_hash}")
            client.hset(keys.head, mapping={"rev": 1, "hash": op_hash})
        finally:
            client.close()
        received = a.until("op")
        assert (received["rev"], received["client"], received["hash"]) == (1, "ghost", op_hash)
    assert document(tandem.http_url, doc)["text"] == "silent"
