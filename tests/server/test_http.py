"""The HTTP side of `tandem serve`: text at past revisions, op pages, submit, verify, health, metrics."""

from __future__ import annotations

import json
from typing import Any

import redis as redis_sync

from tandem.server.store.redis import Keys
from tests.support import RedisProcess, ServerProcess, document, http_get, http_post


def submit(
    tandem: ServerProcess, doc: str, client: str, seq: int, base: int, ops: list[dict[str, object]]
) -> tuple[int, dict[str, object]]:
    body = json.dumps({"client": client, "seq": seq, "base": base, "ops": ops}).encode()
    status, raw = http_post(f"{tandem.http_url}/docs/{doc}/ops", body)
    return status, json.loads(raw)


def type_text(tandem: ServerProcess, doc: str, text: str) -> None:
    for i, ch in enumerate(text):
        ops: list[dict[str, object]] = ([{"type": "Retain", "length": i}] if i else []) + [
            {"type": "Insert", "content": ch}
        ]
        status, answer = submit(tandem, doc, "typist", i + 1, i, ops)
        assert status == 200 and answer["rev"] == i + 1, answer


def test_submit_over_http_is_acked_and_exactly_once(tandem: ServerProcess, doc: str) -> None:
    status, ack = submit(tandem, doc, "h", 1, 0, [{"type": "Insert", "content": "hi"}])
    assert status == 200 and ack["type"] == "ack" and ack["rev"] == 1
    assert submit(tandem, doc, "h", 1, 0, [{"type": "Insert", "content": "hi"}]) == (200, ack)
    assert document(tandem.http_url, doc)["text"] == "hi"


def test_a_bad_submit_is_refused_with_a_code(tandem: ServerProcess, doc: str) -> None:
    status, error = submit(tandem, doc, "h", 1, 0, [{"type": "Delete", "length": 4}])
    assert status == 400 and error["code"] == "bad_op"
    status, error = submit(tandem, doc, "h", 1, 3, [{"type": "Insert", "content": "x"}])
    assert status == 409 and error["code"] == "rev_ahead"
    status, raw = http_post(f"{tandem.http_url}/docs/{doc}/ops", b"{not json")
    assert status == 400 and json.loads(raw)["code"] == "bad_message"
    assert document(tandem.http_url, doc)["rev"] == 0


def test_text_at_every_past_revision(tandem: ServerProcess, doc: str) -> None:
    text = "the quick brown fox jumps"  # past the snapshot interval of 10, twice
    type_text(tandem, doc, text)
    for rev in range(len(text) + 1):
        status, raw = http_get(f"{tandem.http_url}/docs/{doc}?rev={rev}")
        assert status == 200 and json.loads(raw)["text"] == text[:rev], rev
    status, raw = http_get(f"{tandem.http_url}/docs/{doc}?rev={len(text) + 1}")
    assert status == 409 and json.loads(raw)["code"] == "rev_ahead"
    assert http_get(f"{tandem.http_url}/docs/{doc}?rev=x")[0] == 400


def test_ops_are_served_in_pages(tandem: ServerProcess, doc: str) -> None:
    type_text(tandem, doc, "abcdef")
    status, raw = http_get(f"{tandem.http_url}/docs/{doc}/ops?from=2&to=4")
    page = json.loads(raw)
    assert status == 200 and [op["rev"] for op in page["ops"]] == [2, 3, 4] and page["next"] is None
    page = json.loads(http_get(f"{tandem.http_url}/docs/{doc}/ops")[1])
    assert [op["rev"] for op in page["ops"]] == [1, 2, 3, 4, 5, 6] and page["head"] == 6


def test_verify_accepts_an_intact_chain_and_finds_a_corrupted_record(
    tandem: ServerProcess, redis: RedisProcess, doc: str
) -> None:
    type_text(tandem, doc, "abcd")
    verdict = json.loads(http_get(f"{tandem.http_url}/docs/{doc}/verify")[1])
    assert verdict["ok"] is True and verdict["rev"] == 4
    # Rewrite the stream with revision 3's inserted text changed but its hash kept.
    client: Any = redis_sync.Redis.from_url(redis.url)
    log = Keys(doc).log
    entries = client.xrange(log)
    client.delete(log)
    for entry_id, fields in entries:
        frame = fields[b"r"]
        if entry_id == b"3-1":
            frame = frame.replace(b'"content":"c"', b'"content":"C"')
        client.xadd(log, {"r": frame}, id=entry_id)
    client.close()
    verdict = json.loads(http_get(f"{tandem.http_url}/docs/{doc}/verify")[1])
    assert verdict["ok"] is False and verdict["first_bad"] == 3


def test_health_metrics_and_home_page(tandem: ServerProcess) -> None:
    status, raw = http_get(f"{tandem.http_url}/healthz")
    assert status == 200 and json.loads(raw) == {"status": "ok", "redis": True, "draining": False}
    assert http_get(f"{tandem.http_url}/livez")[0] == 200
    status, raw = http_get(f"{tandem.http_url}/metrics")
    assert status == 200 and b"# TYPE tandem_ops_committed_total counter" in raw
    status, raw = http_get(f"{tandem.http_url}/")
    assert status == 200 and b"<" in raw


def test_healthz_is_503_while_redis_is_down(tmp_path: object) -> None:
    from tests.support import redis_process

    own = redis_process(tmp_path / "redis")  # type: ignore[operator]
    server = ServerProcess(own.url, tmp_path / "server", extra_args=("--log-level", "error"))  # type: ignore[operator]
    try:
        server.start()
        own.kill()
        status, raw = http_get(f"{server.http_url}/healthz")
        assert status == 503 and json.loads(raw)["status"] == "redis_unreachable"
        assert http_get(f"{server.http_url}/livez")[0] == 200, "Redis down is no reason to restart"
        own.start()
        assert http_get(f"{server.http_url}/healthz")[0] == 200
    finally:
        server.stop()
        own.stop()
