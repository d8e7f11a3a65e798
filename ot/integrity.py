"""The integrity hash chain (docs/protocol.md, "Integrity chain").

hash(0) = sha256(b"tandem:" + doc id); hash(R) = sha256(raw hash(R-1) + canonical record
of R). The canonical record is compact JSON with keys in the order rev, client, seq,
ops, which is exactly how msgspec encodes the `Record` Struct below; a golden-bytes
test pins it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from tandem.ot.operation import Operation


class Record(msgspec.Struct, frozen=True):
    """The canonical record of one committed revision."""

    rev: int
    client: str
    seq: int
    ops: Operation


_encode = msgspec.json.Encoder().encode


def genesis_hash(doc: str) -> str:
    """The hash of revision 0, the empty document."""
    return hashlib.sha256(b"tandem:" + doc.encode("utf-8")).hexdigest()


def canonical_record(rev: int, client: str, seq: int, ops: Operation) -> bytes:
    return _encode(Record(rev, client, seq, ops))


def next_hash(prev_hash: str, rev: int, client: str, seq: int, ops: Operation) -> str:
    """The hash of revision ``rev``, given the hash of ``rev - 1``."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_record(rev, client, seq, ops)).hexdigest()


def first_bad_revision(doc: str, records: Iterable[tuple[Record, str]]) -> int | None:
    """Recompute the chain over ``(record, stored hash)`` pairs from revision 1 in order.

    Returns the first revision whose stored hash or numbering is wrong, or None.
    """
    expected_rev = 1
    prev = genesis_hash(doc)
    for record, stored in records:
        if record.rev != expected_rev:
            return expected_rev
        prev = next_hash(prev, record.rev, record.client, record.seq, record.ops)
        if prev != stored:
            return record.rev
        expected_rev += 1
    return None
