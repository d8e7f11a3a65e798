"""A real 3-master Redis Cluster: it forms, and keys of one document share a slot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from tandem.ot.integrity import next_hash
from tandem.ot.operation import Insert, Retain
from tandem.ot.protocol import CommittedOp
from tandem.server.store.base import ClientRecord, Head, StoredOp, genesis
from tandem.server.store.redis import RedisOpStore
from tandem.testing.cluster import RedisCluster, running_cluster
from tests.server.store_contract import CHECKS, Check, run_check
from tests.support import Deployment, Raw, assert_verified, document


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def test_cluster_forms_with_three_masters_covering_all_slots(cluster: RedisCluster) -> None:
    client = redis.RedisCluster.from_url(cluster.url)
    try:
        masters = [n for n in client.get_nodes() if n.server_type == "primary"]  # type: ignore[no-untyped-call]
        assert sorted(n.port for n in masters) == sorted(cluster.ports)
        slots = client.cluster_slots()
        assert sum(end - start + 1 for start, end in slots) == 16384
        # Keys spread over every master, so a document per slot exercises every node.
        owners = {client.get_node_from_key(f"doc-{i}").port for i in range(64)}  # type: ignore[no-untyped-call]
        assert owners == set(cluster.ports)
    finally:
        client.close()


def test_one_script_spans_the_keys_of_one_hash_tag(cluster: RedisCluster) -> None:
    client = redis.RedisCluster.from_url(cluster.url)
    try:
        script = client.register_script(
            "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])"
        )
        assert script(keys=["t:{d1}:a", "t:{d1}:b"], args=["x"]) == 1
        with pytest.raises(redis.exceptions.RedisClusterException, match="slot"):
            script(keys=["t:{d1}:a", "t:{d2}:b"], args=["x"])
    finally:
        client.close()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_the_store_contract_holds_on_the_cluster(cluster: RedisCluster, check: Check) -> None:
    asyncio.run(asyncio.wait_for(run_check(check, cluster.url, cluster=True), 30))


def test_op_store_commits_and_notifies_across_nodes(cluster: RedisCluster) -> None:
    """Two stores (two processes, in effect) on the cluster: commits on documents of every node
    are refused when stale, replayed in order, and heard by the other store's subscription."""
    docs = [f"cl-{i}" for i in range(24)]
    heard: list[tuple[str, int]] = []

    def listener(doc: str, frame: bytes) -> None:
        heard.append((doc, StoredOp.from_frame(frame).op.rev))

    async def run() -> None:
        writer = RedisOpStore(cluster.url, cluster=True)
        reader = RedisOpStore(cluster.url, cluster=True)
        try:
            for doc in docs:
                await reader.subscribe(doc)
            reader.start_listening(listener)
            await asyncio.sleep(0.3)  # the subscription is in place before the first commit
            for doc in docs:
                prev = genesis(doc).hash
                for rev in (1, 2):
                    first = f"{doc}/1 "
                    ops = (Insert(first),) if rev == 1 else (Retain(len(first)), Insert(f"{doc}/2 "))
                    h = next_hash(prev, rev, "w", rev, ops)
                    stored = StoredOp.of(CommittedOp(rev=rev, client="w", seq=rev, ops=ops, hash=h))
                    assert (await writer.commit(doc, rev - 1, [stored])).status == "ok"
                    prev = h
                stale = await writer.commit(doc, 0, [stored])
                assert (stale.status, stale.head) == ("moved", Head(2, prev))
                assert (await reader.text_at(doc, 2)).text == f"{doc}/1 {doc}/2 "
                assert await reader.client_record(doc, "w") == ClientRecord(2, 2, prev)
            for _ in range(100):
                if len(heard) == 2 * len(docs):
                    break
                await asyncio.sleep(0.05)
            assert sorted(heard) == sorted((d, r) for d in docs for r in (1, 2))
        finally:
            await writer.close()
            await reader.close()

    asyncio.run(run())


def test_two_servers_on_the_cluster_converge_on_many_documents(
    cluster: RedisCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    docs = [f"spread-{i}" for i in range(12)]
    root = tmp_path_factory.mktemp("cluster-servers")
    with Deployment(root, 2, redis_url=cluster.url, extra_args=("--redis-cluster",)) as d:
        clients = {(doc, side): Raw(url, doc) for doc in docs for side, url in enumerate(d.ws_urls)}
        try:
            for (_, side), raw in clients.items():
                raw.hello(f"c{side}")
            for seq in (1, 2, 3):
                for (_, side), raw in clients.items():
                    raw.send(
                        {
                            "type": "op",
                            "seq": seq,
                            "base": 0,
                            "ops": [{"type": "Insert", "content": f"[{side}.{seq}]"}],
                        }
                    )
            for raw in clients.values():
                acks = [raw.until("ack")["rev"] for _ in range(3)]
                assert acks == sorted(acks) and len(set(acks)) == 3, acks
            for (_, side), raw in clients.items():
                # Every op of the other process reached this one through the cluster's pub/sub.
                seen = {m["seq"] for m in raw.received if m["type"] == "op" and m["client"] != f"c{side}"}
                while len(seen) < 3:
                    m = raw.until("op")
                    seen.add(m["seq"])
        finally:
            for raw in clients.values():
                raw.close()
        for doc in docs:
            texts = [document(server.http_url, doc)["text"] for server in d.servers]
            tokens = sorted(f"[{side}.{seq}]" for side in (0, 1) for seq in (1, 2, 3))
            assert texts[0] == texts[1] and sorted(texts[0].replace("]", "] ").split()) == tokens, texts
            assert_verified(d.http_url, doc)
