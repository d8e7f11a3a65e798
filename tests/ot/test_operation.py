"""The helpers that build one op: `replace_op` and `replacement`."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from tandem.ot import IDENTITY, Delete, Insert, Retain, apply, normalize, replace_op, replacement
from tandem.testing.strategies import contents, documents


@given(documents, st.integers(0, 30), st.integers(0, 30), st.one_of(st.just(""), contents))
def test_replace_op_is_retain_insert_delete_in_canonical_form(
    doc: str, position: int, length: int, content: str
) -> None:
    position = min(position, len(doc))
    length = min(length, len(doc) - position)
    op = replace_op(position, length, content)
    assert op == normalize([Retain(position), Insert(content), Delete(length)])  # empty parts dropped
    assert apply(doc, op) == doc[:position] + content + doc[position + length :]


@given(documents, documents)
def test_replacement_turns_old_into_new_keeping_prefix_and_suffix(old: str, new: str) -> None:
    op = replacement(old, new)
    assert apply(old, op) == new
    assert op == normalize(op)
    if old == new:
        assert op == IDENTITY
    else:
        kept = op[0].length if isinstance(op[0], Retain) else 0
        assert kept == len(os.path.commonprefix([old, new]))


def test_replacement_counts_code_points() -> None:
    assert replacement("a😀bc", "a😀xc") == (Retain(2), Insert("x"), Delete(1))
    assert replacement("aa", "a") == (Retain(1), Delete(1))
    assert replacement("", "😀") == (Insert("😀"),)
