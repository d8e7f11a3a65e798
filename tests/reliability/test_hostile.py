"""Hostile input against a live server: every bad frame gets the contract's error or close code,
the server stays up, and neither the document nor the other clients see anything of it.

The oracle for arbitrary frames is the contract's own decoder: a frame it refuses must be refused
by the server, a frame it accepts must not be.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tandem.ot.protocol import client_message_decoder
from tests.support import Message, Raw, ServerProcess, assert_verified, document

DOC = "calm"
SEED_TEXT = "hello wörld 😀"
FRAME_LIMIT = 65_536
ERROR_CODES = {"bad_message", "bad_op", "too_large", "rev_ahead", "rate_limited"}
UNREADABLE = 4400
TOO_LARGE = 4413
_ids = itertools.count()
examples = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("hostile")
    with ServerProcess(None, data, extra_args=("--max-frame-bytes", str(FRAME_LIMIT))) as s:
        with Raw(s.ws_url, DOC) as writer:
            writer.hello("seeder")
            seed = [{"type": "Insert", "content": SEED_TEXT}]
            writer.send({"type": "op", "seq": 1, "base": 0, "ops": seed})
            writer.until("ack")
        yield s


@pytest.fixture(scope="module")
def watcher(server: ServerProcess) -> Iterator[Raw]:
    """A well-behaved client on the document, which must see nothing of the hostile ones."""
    with Raw(server.ws_url, DOC) as w:
        snapshot = w.hello("watcher")
        assert snapshot["text"] == SEED_TEXT
        yield w
        assert w.alive(), "a hostile client disturbed a well-behaved one"
        assert not [m for m in w.received if m["type"] in ("op", "snapshot", "error")][1:], w.received


def assert_untouched(server: ServerProcess) -> None:
    doc = document(server.http_url, DOC)
    assert (doc["rev"], doc["text"]) == (1, SEED_TEXT), f"document changed: {doc}"
    assert_verified(server.http_url, DOC)
    assert server.healthz() == 200


def answer(raw: Raw, joined: bool = True) -> tuple[list[Message], int | None]:
    """Errors the last frame earned, and the close code if the server closed instead.

    A marker sent after the frame bounds its answer: a fetch of revision 1 once joined (it queues
    behind an op on the document, as the op's own answer does), a ping before.
    """
    errors: list[Message] = []
    try:
        if joined:
            raw.send({"type": "fetch", "from": 1, "to": 1})
        else:
            raw.send({"type": "ping"})
        while True:
            m = raw.recv()
            if m["type"] == "error":
                errors.append(m)
            elif (m["type"], m.get("rev")) == ("op", 1) if joined else m["type"] == "pong":
                return errors, None
    except ConnectionClosed as e:
        return errors, e.rcvd.code if e.rcvd is not None else None


def contract_accepts(frame: str | bytes) -> bool:
    try:
        client_message_decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False
    return True


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Messages that may decode but can never change the document.
harmless_types = st.sampled_from(["ping", "presence", "fetch", "pong", "snapshot", "ack", "", "OP", "Hello"])
message_like = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    harmless_types,
    st.dictionaries(
        st.sampled_from(["from", "to", "cursor", "user", "seq", "anchor", "x"]), json_values, max_size=3
    ),
)
frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    json_values.map(json.dumps),
    message_like.map(json.dumps),
)


@examples
@given(frame=frames)
def test_arbitrary_frames_get_an_error_or_4400(
    server: ServerProcess, watcher: Raw, frame: str | bytes
) -> None:
    assume(not (isinstance(frame, str) and '"type": "op"' in frame))
    with Raw(server.ws_url, DOC) as raw:
        raw.hello(f"h{next(_ids)}")
        raw.send(frame)
        errors, closed = answer(raw)
    if contract_accepts(frame):
        assert closed is None and not errors, f"valid frame {frame!r} refused: {errors} {closed}"
    else:
        assert closed == UNREADABLE or (closed is None and errors), f"{frame!r}: {errors} {closed}"
        assert {e["code"] for e in errors} <= ERROR_CODES, errors
    assert_untouched(server)


# None of these is a valid seq, length or future-free base (the document is at rev 1).
hostile_ints = st.one_of(
    st.sampled_from([-1, -(2**63), 2**64, 10**30, 10**400, 1.5, -0.5, 1e300]),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), min_size=1, max_size=2),
)
lengths = st.one_of(st.sampled_from([0, len(SEED_TEXT) + 1, 2**53]), hostile_ints)
bad_components = st.one_of(
    st.builds(lambda n: {"type": "Retain", "length": n}, lengths),
    st.builds(lambda n: {"type": "Delete", "length": n}, lengths),
    st.builds(
        lambda c: {"type": "Insert", "content": c},
        st.one_of(
            st.sampled_from(["", "\ud800", "a\udfffb"]), hostile_ints.filter(lambda v: not isinstance(v, str))
        ),
    ),
    st.builds(lambda t: {"type": t, "length": 1}, st.sampled_from(["retain", "Move", "", "Replace"])),
    json_values,
)
good_components = st.sampled_from(
    [
        {"type": "Insert", "content": "x"},
        {"type": "Retain", "length": 1},
        {"type": "Delete", "length": 1},
    ]
)


@st.composite
def hostile_ops(draw: st.DrawFn) -> dict[str, Any]:
    """An op message with at least one field that the contract refuses."""
    which = draw(st.sets(st.sampled_from(["seq", "base", "ops"]), min_size=1))
    seq = draw(st.one_of(st.just(0), hostile_ints)) if "seq" in which else 1
    base = draw(st.one_of(hostile_ints, st.integers(2, 2**53 - 1))) if "base" in which else 1
    if "ops" in which:
        ops: Any = draw(
            st.one_of(
                st.lists(good_components, max_size=3).flatmap(
                    lambda good: st.lists(bad_components, min_size=1, max_size=3).map(lambda bad: good + bad)
                ),
                st.just([{"type": "Retain", "length": len(SEED_TEXT)}, {"type": "Delete", "length": 1}]),
                hostile_ints,
            )
        )
    else:
        ops = [{"type": "Insert", "content": "x"}]
    return {"type": "op", "seq": seq, "base": base, "ops": ops}


@examples
@given(message=hostile_ops())
def test_hostile_ops_are_refused_and_change_nothing(
    server: ServerProcess, watcher: Raw, message: dict[str, Any]
) -> None:
    with Raw(server.ws_url, DOC) as raw:
        raw.hello(f"h{next(_ids)}")
        raw.send(json.dumps(message))
        errors, closed = answer(raw)
    assert closed is None, f"{message}: closed with {closed}, expected an error and an open connection"
    assert len(errors) == 1 and errors[0]["code"] in ERROR_CODES, f"{message}: {errors}"
    assert_untouched(server)


def raw_frame_answer(
    server: ServerProcess, frame: str | bytes, hello: bool = True
) -> tuple[list[Message], int | None]:
    with Raw(server.ws_url, DOC) as raw:
        if hello:
            raw.hello(f"h{next(_ids)}")
        raw.send(frame)
        return answer(raw, joined=hello)


OP_PREFIX = '{"type":"op","seq":1,"base":1,"ops":['


@pytest.mark.parametrize(
    "frame, codes",
    [
        (OP_PREFIX + '{"type":"Insert","content":"\\ud800"}]}', {"bad_op", "bad_message"}),
        (OP_PREFIX + '{"type":"Insert","content":"a\\udc00"}]}', {"bad_op", "bad_message"}),
        ('{"type":"presence","cursor":null,"user":{"name":"\\ud83d"}}', {"bad_message"}),
        (OP_PREFIX + '{"type":"Retain","length":' + "9" * 5000 + "}]}", {"bad_message"}),
        ('{"type":"fetch","from":-1}', {"bad_message"}),
        ('{"type":"fetch","from":0,"to":' + str(2**64) + "}", {"bad_message"}),
        (OP_PREFIX + ",".join(['{"type":"Insert","content":"a"}'] * 20_000) + "]}", {"too_large", "bad_op"}),
    ],
)
def test_named_hostile_frames(server: ServerProcess, watcher: Raw, frame: str, codes: set[str]) -> None:
    errors, closed = raw_frame_answer(server, frame)
    assert closed in (None, TOO_LARGE), closed
    assert closed == TOO_LARGE or (errors and errors[0]["code"] in codes), errors
    assert_untouched(server)


def test_deeply_nested_frame_is_refused(server: ServerProcess, watcher: Raw) -> None:
    for depth in (1_000, 30_000):
        frame = '{"type":"presence","cursor":' + "[" * depth + "]" * depth + "}"
        errors, closed = raw_frame_answer(server, frame)
        assert closed == UNREADABLE or [e["code"] for e in errors] == ["bad_message"], (depth, errors, closed)
    assert_untouched(server)


def test_frame_over_the_limit_closes_4413(server: ServerProcess, watcher: Raw) -> None:
    frame = json.dumps({"type": "presence", "cursor": None, "user": {"name": "x" * (FRAME_LIMIT + 10)}})
    assert raw_frame_answer(server, frame)[1] == TOO_LARGE
    assert raw_frame_answer(server, b"\x00" * (FRAME_LIMIT * 4))[1] == TOO_LARGE
    assert_untouched(server)


def test_op_before_hello_is_refused(server: ServerProcess, watcher: Raw) -> None:
    op = {"type": "op", "seq": 1, "base": 1, "ops": [{"type": "Insert", "content": "x"}]}
    errors, closed = raw_frame_answer(server, json.dumps(op), hello=False)
    assert closed == UNREADABLE or [e["code"] for e in errors] == ["bad_message"], (errors, closed)
    assert_untouched(server)


def test_second_hello_is_refused(server: ServerProcess, watcher: Raw) -> None:
    errors, closed = raw_frame_answer(server, json.dumps({"type": "hello", "client": "again"}))
    assert closed is None and [e["code"] for e in errors] == ["bad_message"], (errors, closed)
    assert_untouched(server)


def test_revisions_from_the_future_are_named(server: ServerProcess, watcher: Raw) -> None:
    with Raw(server.ws_url, DOC) as raw:
        raw.send({"type": "hello", "client": f"h{next(_ids)}", "rev": 99})
        assert raw.error()["code"] == "rev_ahead"
    errors, closed = raw_frame_answer(server, json.dumps({"type": "fetch", "from": 50}))
    assert closed is None and errors and errors[0]["code"] in ("rev_ahead", "bad_message"), errors
    assert_untouched(server)


@pytest.mark.parametrize("client", ["", "a b", "x" * 65, "é", "a/b", "a\u0000"])
def test_invalid_client_ids_are_refused(server: ServerProcess, watcher: Raw, client: str) -> None:
    with Raw(server.ws_url, DOC) as raw:
        raw.send({"type": "hello", "client": client})
        errors, closed = answer(raw, joined=False)
    assert closed == UNREADABLE or (errors and errors[0]["code"] == "bad_message"), (errors, closed)
    assert_untouched(server)


@pytest.mark.parametrize("doc", ["a%20b", "x" * 129, "%C3%A9", "a%00"])
def test_invalid_document_ids_are_refused(server: ServerProcess, doc: str) -> None:
    try:
        with Raw(server.ws_url, doc) as raw:
            assert raw.closed_with() == UNREADABLE
            assert raw.received and raw.received[0]["code"] == "bad_message", raw.received
    except InvalidStatus as e:  # a refused handshake is a correct answer too
        assert e.response.status_code in (400, 403, 404), e
    assert server.healthz() == 200


def test_flood_past_the_rate_limit_is_limited_not_lost(server: ServerProcess) -> None:
    """Ops sent faster than the limit: some refused with rate_limited, every acked one is in the text."""
    doc = "flood"
    acked: list[str] = []
    with Raw(server.ws_url, doc) as raw:
        raw.hello("flooder")
        total = 600
        for seq in range(1, total + 1):
            token = f"<{seq}>"
            raw.send({"type": "op", "seq": seq, "base": 0, "ops": [{"type": "Insert", "content": token}]})
        limited = 0
        for _ in range(total):
            m = raw.recv()
            while m["type"] not in ("ack", "error"):
                m = raw.recv()
            if m["type"] == "ack":
                acked.append(f"<{m['seq']}>")
            else:
                assert m["code"] in ("rate_limited", "bad_message", "bad_op"), m
                limited += m["code"] == "rate_limited"
        assert raw.alive()
    assert limited > 0, "600 ops in a burst were all accepted: no rate limit"
    text = document(server.http_url, doc)["text"]
    assert sorted(text.replace("<", " <").split()) == sorted(acked)
    assert server.healthz() == 200


def test_presence_and_fetch_floods_are_limited(server: ServerProcess, watcher: Raw) -> None:
    """Presence is relayed to every other client and fetch reads the log: unbounded, either one
    would let one connection multiply its traffic onto everyone."""
    burst = 2_000
    floods = ({"type": "presence", "cursor": {"anchor": 1, "head": 1}}, {"type": "fetch", "from": 1, "to": 1})
    for flood in floods:
        with Raw(server.ws_url, DOC) as raw:
            raw.hello(f"h{next(_ids)}")
            for _ in range(burst):
                raw.send(flood)
            # The pong comes after the answers the session gave to every frame before it.
            raw.send({"type": "ping"})
            while raw.recv()["type"] != "pong":
                pass
            limited = sum(1 for m in raw.received if m.get("code") == "rate_limited")
        assert limited > 0, f"{burst} x {flood['type']} in a burst were all accepted"
    assert watcher.alive()
    assert_untouched(server)


def http_request(url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


submit_fields = st.fixed_dictionaries(
    {},
    optional={
        "client": st.one_of(st.just("http"), st.text(max_size=70), hostile_ints),
        "seq": st.one_of(st.just(1), hostile_ints),
        "base": st.one_of(st.just(1), hostile_ints, st.integers(2, 2**53)),
        "ops": st.one_of(st.lists(bad_components, min_size=1, max_size=3), hostile_ints),
    },
)


@examples
@given(body=st.one_of(st.binary(max_size=64), submit_fields.map(lambda d: json.dumps(d).encode())))
def test_hostile_http_submits_get_4xx(server: ServerProcess, body: bytes) -> None:
    status = http_request(f"{server.http_url}/docs/{DOC}/ops", body)
    assert 400 <= status < 500, (body, status)
    assert_untouched(server)


def test_http_body_over_the_limit_is_413(server: ServerProcess) -> None:
    assert http_request(f"{server.http_url}/docs/{DOC}/ops", b"x" * (FRAME_LIMIT * 8)) == 413
    assert_untouched(server)


@examples
@given(
    path=st.sampled_from(["/docs/calm?rev=", "/docs/calm/ops?from=", "/docs/calm/ops?from=1&to="]),
    value=st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12), st.just("9" * 5000)),
)
def test_hostile_query_parameters_never_break_the_server(
    server: ServerProcess, path: str, value: str
) -> None:
    status = http_request(server.http_url + path + urllib.parse.quote(value))
    assert status < 500, (path, value, status)
    assert server.healthz() == 200
