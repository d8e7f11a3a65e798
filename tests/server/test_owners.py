"""`claim_client`: a client id belongs to the first subject that claims it on a document."""

from __future__ import annotations

from pathlib import Path

from tandem.server.store.redis import Keys, RedisOpStore
from tests.support import redis_process, run, unique_doc


def test_the_first_subject_owns_a_client_id_on_one_document(tmp_path: Path) -> None:
    process = redis_process(tmp_path)
    doc, other = unique_doc("owners"), unique_doc("owners")

    async def scenario() -> None:
        store = RedisOpStore(process.url)
        try:
            assert await store.claim_client(doc, "c1", None) is None  # looking claims nothing
            assert await store.claim_client(doc, "c1", "alice") == "alice"
            assert await store.claim_client(doc, "c1", "mallory") == "alice"
            assert await store.claim_client(doc, "c1", None) == "alice"
            assert await store.claim_client(doc, "c1", "alice") == "alice"
            assert await store.claim_client(other, "c1", "mallory") == "mallory"  # per document
            assert await store.redis.hgetall(Keys(doc).owners) == {b"c1": b"alice"}
        finally:
            await store.close()

    try:
        run(scenario())
    finally:
        process.stop()
