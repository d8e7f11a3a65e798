"""docs/protocol.md stays in step with the code: its worked example and its error codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tandem.ot.integrity import canonical_record, genesis_hash, next_hash
from tandem.ot.operation import Delete, Insert, Retain, normalize
from tandem.ot.protocol import ErrorCode

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def test_the_worked_example_hashes_are_the_code_s() -> None:
    op1 = (Insert('Hi "you"\n😀'),)
    op2 = normalize((Retain(3), Delete(5), Insert("é")))
    h0 = genesis_hash("notes")
    h1 = next_hash(h0, 1, "alice", 1, op1)
    h2 = next_hash(h1, 2, "bob", 7, op2)
    for value in (
        h0,
        h1,
        h2,
        canonical_record(1, "alice", 1, op1).decode(),
        canonical_record(2, "bob", 7, op2).decode(),
    ):
        assert value in DOC
    record = {"rev": 1, "client": "alice", "seq": 1, "ops": [{"type": "Insert", "content": 'Hi "you"\n😀'}]}
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert hashlib.sha256(bytes.fromhex(h0) + data).hexdigest() == h1


def test_every_error_code_is_documented() -> None:
    for code in ErrorCode:
        assert f"| `{code.value}` |" in DOC, code
