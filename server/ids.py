"""Document ids as the URLs carry them: checked against the protocol's pattern (ot/protocol.py)."""

from __future__ import annotations

import msgspec

from tandem.ot.protocol import DocId

_doc_id_decoder = msgspec.json.Decoder(DocId)


def valid_doc_id(doc: str) -> bool:
    try:
        _doc_id_decoder.decode(msgspec.json.encode(doc))
    except msgspec.ValidationError:
        return False
    return True


def bad_doc_id(doc: str) -> str:
    """The error message for a document id that `valid_doc_id` refuses."""
    return f"document id {doc[:140]!r} is not 1-128 of A-Z a-z 0-9 . _ -"
