"""Every resource one client can make the server spend is bounded, in bytes and in time.

Each test is a hostile input that once stalled or bloated the server, run against a real
`tandem serve` with its limits set low enough to reach quickly. No test times anything:
what is asserted is the behaviour that bounds the cost (a refusal, a close, an order of
answers that shows the event loop was free). The figures are in docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from tandem.ot.operation import Insert
from tandem.ot.protocol import CommittedOp
from tandem.server import http
from tandem.server.settings import Settings
from tandem.server.store.base import StoredOp
from tandem.server.store.redis import RedisOpStore
from tandem.server.window import Window
from tests.support import Raw, RedisProcess, ServerProcess, document, http_get, http_post, run, unique_doc

pytestmark = pytest.mark.slow

QUIET = ("--log-level", "error")


@pytest.fixture(scope="module")
def server(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("limits"),
        extra_args=(
            *QUIET,
            "--max-components",
            "20000",
            "--max-rebase-components",
            "1000000",
            "--send-queue-bytes",
            "400000",
            "--answer-max-bytes",
            "300000",
            "--window-bytes",
            "200000",
            "--max-doc-length",
            "90000",
            "--hello-timeout",
            "0.5",
            "--max-connections",
            "6",
            "--ops-per-second",
            "100000",
        ),
    ) as process:
        yield process


def post(
    server: ServerProcess, doc: str, client: str, seq: int, base: int, ops: list[object]
) -> tuple[int, Any]:
    body = json.dumps({"client": client, "seq": seq, "base": base, "ops": ops}).encode()
    status, answer = http_post(f"{server.http_url}/docs/{doc}/ops", body, timeout=60)
    return status, json.loads(answer)


RETAIN = {"type": "Retain", "length": 1}
DELETE = {"type": "Delete", "length": 1}
INSERT = {"type": "Insert", "content": "y"}
WIDTH = 6666  # the heavy document's length
HEAVY_OPS = 90


def replacing(count: int) -> list[object]:
    """An op of ``3 * count`` components that keeps the length: every other letter replaced."""
    return [c for _ in range(count) for c in (RETAIN, INSERT, DELETE)]


@pytest.fixture(scope="module")
def heavy(server: ServerProcess) -> str:
    """A document of 6,666 letters whose history holds 90 ops of 9,999 components each."""
    doc = unique_doc("heavy")
    assert post(server, doc, "builder", 1, 0, [{"type": "Insert", "content": "x" * WIDTH}])[0] == 200
    for seq in range(2, HEAVY_OPS + 2):
        status, answer = post(server, doc, "builder", seq, seq - 1, replacing(WIDTH // 2))
        assert status == 200, answer
    return doc


# -- the event loop ---------------------------------------------------------------------------


def test_an_op_whose_rebase_would_pass_the_limit_is_refused_too_large(
    server: ServerProcess, heavy: str
) -> None:
    with Raw(server.ws_url, heavy) as a:
        a.hello("alice")
        # 90 ops x (9,999 + 13,332) components to transform through: past 1,000,000
        wide = [c for _ in range(WIDTH) for c in (RETAIN, INSERT)]
        a.send({"type": "op", "seq": 1, "base": 1, "ops": wide})
        error = a.error(timeout=30)
        assert (error["code"], error["seq"]) == ("too_large", 1), error
        assert "too far behind" in error["message"]
        # a small op from the same base passes: 90 x (9,999 + 1) components
        a.send({"type": "op", "seq": 2, "base": 1, "ops": [{"type": "Insert", "content": "!"}]})
        assert a.until("ack", timeout=30)["rev"] == HEAVY_OPS + 2
    assert document(server.http_url, heavy)["text"].startswith("!")


def _answered_meanwhile(long_call: Callable[[], None], quick_call: Callable[[], None]) -> int:
    """How many ``quick_call``s (sent one after another) were answered while ``long_call`` ran."""
    done = threading.Event()

    def run_long() -> None:
        long_call()
        done.set()

    thread = threading.Thread(target=run_long)
    thread.start()
    answered = 0
    while not done.is_set() and answered < 200:
        quick_call()
        if not done.is_set():
            answered += 1
    thread.join(60)
    assert done.is_set()
    return answered


def test_a_long_rebase_leaves_the_event_loop_to_other_documents(server: ServerProcess, heavy: str) -> None:
    """While one op is rebased through 900,000 components of history (most of a second), edits on
    another document are acknowledged: the rebase yields to the event loop between slices. A
    rebase in one piece would let one or two through, those that came before it."""
    quick_doc = unique_doc("quick")
    quick = iter(range(1, 1000))

    def slow_edit() -> None:
        status, answer = post(server, heavy, "slow", 1, 1, [{"type": "Insert", "content": "z"}])
        assert status == 200, answer

    def quick_edit() -> None:
        n = next(quick)
        status, answer = post(server, quick_doc, "quick", n, n - 1, [{"type": "Insert", "content": "q"}])
        assert status == 200, answer

    assert _answered_meanwhile(slow_edit, quick_edit) >= 5


def test_verify_of_a_heavy_log_leaves_the_event_loop_to_other_requests(
    redis: RedisProcess, heavy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /verify, in process on the same Redis, beside a task that counts its turns of the event
    loop. Each op verified notes the count: verifying 900,000 components in one stretch would see
    it change only at the few Redis reads; in slices, it changes every slice."""
    turns = 0
    seen: set[int] = set()
    real_apply = http.apply

    def noting_apply(text: str, ops: Any) -> str:
        seen.add(turns)
        return real_apply(text, ops)

    monkeypatch.setattr(http, "apply", noting_apply)

    async def scenario() -> Any:
        nonlocal turns
        app = Starlette()
        store = RedisOpStore(redis.url)
        app.state.hub = SimpleNamespace(store=store)
        app.state.settings = Settings()
        scope = {
            "type": "http",
            "app": app,
            "path_params": {"doc": heavy},
            "headers": [],
            "query_string": b"",
        }
        done = False

        async def ticker() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        counting = asyncio.create_task(ticker())
        try:
            response = await http.verify(Request(scope))
        finally:
            done = True
            await counting
            await store.close()
        return json.loads(bytes(response.body))

    verdict = run(scenario())
    assert verdict["ok"], verdict
    slices = HEAVY_OPS * (3 * (WIDTH // 2)) // http.VERIFY_SLICE
    assert len(seen) >= slices * 2 // 3, (
        f"the loop turned {len(seen)} times while {slices} slices were verified"
    )


# -- memory ---------------------------------------------------------------------------------


def _stored(rev: int, size: int) -> StoredOp:
    return StoredOp.of(CommittedOp(rev, "c", rev, (Insert("a" * size),), "h"))


def test_the_window_is_bounded_in_count_and_in_bytes_and_keeps_the_head() -> None:
    window = Window(max_ops=10, max_bytes=10_000)
    for rev in range(1, 31):
        window.append(_stored(rev, 50))
    assert len(window) == 10 and window[0].op.rev == 21, "count bound"
    assert window.after(20, 30) is not None and window.after(19, 30) is None
    window.append(_stored(31, 20_000))
    assert [s.op.rev for s in window] == [31], "bytes bound; the head op stays"
    assert window.bytes == len(window[0].frame)


def test_a_receiver_that_does_not_read_is_closed_1013_when_its_queue_passes_its_bytes(
    server: ServerProcess,
) -> None:
    doc = unique_doc("no-reader")
    with Raw(server.ws_url, doc) as sink, Raw(server.ws_url, doc) as watcher:
        sink.hello("sink")
        watcher.hello("watcher")
        # never read from sink: 150 ops of 60 KB fill its socket and then its queue (400,000 bytes)
        for n in range(1, 151):
            inserted = post(
                server, doc, "w", 2 * n - 1, 2 * n - 2, [{"type": "Insert", "content": "q" * 60000}]
            )
            deleted = post(server, doc, "w", 2 * n, 2 * n - 1, [{"type": "Delete", "length": 60000}])
            assert inserted[0] == deleted[0] == 200, (inserted, deleted)
            while not (message := watcher.recv(timeout=10)).get("type") == "op" or message["rev"] < 2 * n:
                pass  # the watcher keeps up
        assert sink.closed_with(30) == 1013
        assert watcher.alive(), "a reader that keeps up is not cut"


def test_a_fetch_larger_than_an_answer_may_be_is_refused_and_the_resume_gets_a_snapshot(
    server: ServerProcess,
) -> None:
    doc = unique_doc("big-fetch")
    for seq in range(1, 11):  # 10 ops of ~40 KB: 400 KB of log, past the 300,000-byte answer bound
        assert (
            post(server, doc, "w", 2 * seq - 1, 2 * seq - 2, [{"type": "Insert", "content": "f" * 40000}])[0]
            == 200
        )
        assert post(server, doc, "w", 2 * seq, 2 * seq - 1, [{"type": "Delete", "length": 40000}])[0] == 200
    with Raw(server.ws_url, doc) as reader:
        reader.hello("reader")
        reader.send({"type": "fetch", "from": 1})
        error = reader.error(timeout=30)
        assert error["code"] == "too_large" and "resume" in error["message"], error
        assert reader.closed_with(10) == 1013
    with Raw(server.ws_url, doc) as resumed:
        resumed.send({"type": "hello", "client": "reader", "rev": 0})
        first = resumed.recv(timeout=30)
        assert first["type"] == "snapshot" and first["rev"] == 20, "a replay too large is a snapshot"
        resumed.until("ready")
        resumed.send({"type": "fetch", "from": 19, "to": 20})  # a small fetch is answered
        assert [resumed.until("op")["rev"] for _ in range(2)] == [19, 20]


# -- connections ----------------------------------------------------------------------------


def test_a_socket_that_never_says_hello_is_closed_4408(server: ServerProcess) -> None:
    with Raw(server.ws_url, unique_doc("mute")) as mute:
        error = mute.error(timeout=10)
        assert "no hello" in error["message"], error
        assert mute.closed_with(10) == 4408


def test_connections_past_the_cap_are_refused_1013_and_the_rest_stay_served(server: ServerProcess) -> None:
    doc = unique_doc("cap")
    held: list[Raw] = []
    deadline = time.monotonic() + 10
    while b"\ntandem_connections 0\n" not in http_get(f"{server.http_url}/metrics")[1]:  # earlier ones gone
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        for i in range(6):
            raw = Raw(server.ws_url, doc)
            held.append(raw)
            raw.hello(f"c{i}")
        with Raw(server.ws_url, doc) as extra:
            assert extra.closed_with(10) == 1013
        assert all(raw.alive() for raw in held)
        assert server.healthz() == 200
    finally:
        for raw in held:
            raw.close()


# -- bad input ------------------------------------------------------------------------------


def test_deep_nesting_is_bad_message_and_the_connection_stays(server: ServerProcess) -> None:
    nested = '{"type":"op","seq":3,"base":0,"ops":[],"x":' + "[" * 200_000 + "]" * 200_000 + "}"
    with Raw(server.ws_url, unique_doc("nest")) as a:
        a.hello("alice")
        a.send(nested)
        error = a.error()
        assert (error["code"], error["seq"]) == ("bad_message", 3), error
        assert a.alive()
    status, body = http_post(f"{server.http_url}/docs/{unique_doc('nest')}/ops", nested.encode())
    assert status == 400 and json.loads(body)["code"] == "bad_message", body


def test_ids_ending_in_a_newline_are_refused(server: ServerProcess) -> None:
    with Raw(server.ws_url, unique_doc("nl")) as a:
        error = a.hello("alice\n")
        assert error["type"] == "error" and error["code"] == "bad_message", error
    status, _ = http_get(f"{server.http_url}/docs/x%0A")
    assert status == 400
    status, body = http_post(
        f"{server.http_url}/docs/{unique_doc('nl')}/ops",
        json.dumps({"client": "b\n", "seq": 1, "base": 0, "ops": []}).encode(),
    )
    assert status == 400 and json.loads(body)["code"] == "bad_message", body


def test_a_trailing_retain_past_the_end_is_bad_op(server: ServerProcess) -> None:
    doc = unique_doc("retain")
    status, answer = post(server, doc, "a", 1, 0, [{"type": "Retain", "length": 2**53 - 1}])
    assert (status, answer["code"]) == (400, "bad_op"), answer
    assert post(server, doc, "a", 1, 0, [{"type": "Insert", "content": "ab"}])[0] == 200
    assert post(server, doc, "a", 2, 1, [{"type": "Retain", "length": 3}])[1]["code"] == "bad_op"
    assert post(server, doc, "a", 2, 1, [{"type": "Retain", "length": 2}])[0] == 200, "a retain to the end"
    assert document(server.http_url, doc)["rev"] == 2


# -- the contract's edge cases --------------------------------------------------------------


def test_fetch_edges_answer_every_time(server: ServerProcess) -> None:
    doc = unique_doc("fetch-edges")
    for seq in range(1, 4):
        assert post(server, doc, "w", seq, seq - 1, [{"type": "Insert", "content": str(seq)}])[0] == 200
    with Raw(server.ws_url, doc) as a:
        a.hello("alice")
        a.send({"type": "fetch", "from": 3, "to": 2})
        assert a.error()["code"] == "bad_message", "from past to is answered, not left hanging"
        a.send({"type": "fetch", "from": 2, "to": 3})
        assert [a.until("op")["rev"] for _ in range(2)] == [2, 3], "to is inclusive"
        a.send({"type": "fetch", "from": 4})
        assert a.error()["code"] == "rev_ahead"
    status, body = http_get(f"{server.http_url}/docs/{doc}/ops?from=4")
    assert status == 200 and json.loads(body)["ops"] == [], "head + 1: nothing new yet"
    status, body = http_get(f"{server.http_url}/docs/{doc}/ops?from=5")
    assert status == 409 and json.loads(body)["code"] == "rev_ahead"


def test_an_op_refused_for_a_lone_surrogate_names_its_seq(server: ServerProcess) -> None:
    with Raw(server.ws_url, unique_doc("surrogate")) as a:
        a.hello("alice")
        a.send('{"type":"op","seq":5,"base":0,"ops":[{"type":"Insert","content":"\\udc00"}]}')
        error = a.error()
        assert (error["code"], error["seq"]) == ("bad_message", 5), error


def test_ops_of_a_trimmed_log_are_not_found_not_silently_later(redis: RedisProcess, tmp_path: Path) -> None:
    with ServerProcess(
        redis.url, tmp_path, extra_args=(*QUIET, "--snapshot-interval", "2", "--log-retention", "1")
    ) as trimmed:
        doc = unique_doc("trimmed")
        for seq in range(1, 9):
            assert post(trimmed, doc, "w", seq, seq - 1, [{"type": "Insert", "content": "t"}])[0] == 200
        status, body = http_get(f"{trimmed.http_url}/docs/{doc}/ops?from=1")
        assert status == 404 and json.loads(body)["code"] == "not_found", body
        status, body = http_get(f"{trimmed.http_url}/docs/{doc}/ops?from=8")
        assert status == 200 and [op["rev"] for op in json.loads(body)["ops"]] == [8]
