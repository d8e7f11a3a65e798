"""The store contract against a real redis-server over both commit paths, and what is
particular to Redis."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from tandem.server.store.redis import Keys, RedisOpStore
from tests.server.store_contract import CHECKS, Check, run_check
from tests.support import RedisProcess, run, unique_doc


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "redis-py"])
@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_contract(redis: RedisProcess, check: Check, pipelined: bool) -> None:
    run(run_check(check, redis.url, pipelined=pipelined))


def test_the_keys_of_one_document_share_a_hash_slot() -> None:
    keys = Keys("notes.42")
    slots = {key_slot(k.encode()) for k in keys.commit_keys()}
    assert len(slots) == 1


def test_commits_survive_a_redis_restart(tmp_path: object) -> None:
    from tests.server.store_contract import typing
    from tests.support import redis_process

    process = redis_process(tmp_path)  # type: ignore[arg-type]
    doc = unique_doc("restart")
    records = typing(doc, "abc")

    async def commit() -> None:
        store = RedisOpStore(process.url)
        assert (await store.commit(doc, 0, records)).status == "ok"
        await store.close()

    async def read() -> tuple[int, str]:
        store = RedisOpStore(process.url)
        try:
            snap = await store.text_at(doc, 3)
            return snap.rev, snap.text
        finally:
            await store.close()

    try:
        run(commit())
        process.stop()
        process.start()
        assert run(read()) == (3, "abc")
    finally:
        process.stop()
