"""Cursor and selection transform: where a position goes when an op is applied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec

from tandem.ot.operation import MAX_LENGTH, Component, Insert, Retain

# At the wire a position is a code point index: never negative, never past what any document
# may hold (the server checks it against the document at the cursor's revision).
Position = Annotated[int, msgspec.Meta(ge=0, le=MAX_LENGTH)]


class Cursor(msgspec.Struct, frozen=True):
    """A selection: ``anchor`` where it started, ``head`` where the caret is (equal for a caret)."""

    anchor: Position
    head: Position


def transform_index(index: int, op: Sequence[Component], own: bool = False) -> int:
    """Where code point position ``index`` lands after ``op``.

    A position inside deleted text collapses to the deletion point. An insert exactly
    at the position pushes it right only when the op is the owner's own (``own``): the
    owner's caret follows what it typed, while another user's insert at one's caret
    appears after it, so one's caret stays where one expects.
    """
    walked = 0  # code points of the original document the op has passed over
    result = index
    for c in op:
        if walked > index or (walked == index and not own):
            break
        t = type(c)
        if t is Retain:
            walked += c.length  # type: ignore[union-attr]
        elif t is Insert:
            result += len(c.content)  # type: ignore[union-attr]
        else:
            n = c.length  # type: ignore[union-attr]
            result -= min(n, index - walked)
            walked += n
    return result


def transform_cursor(cursor: Cursor, op: Sequence[Component], own: bool = False) -> Cursor:
    """Transform both ends of a selection through ``op`` (see `transform_index`)."""
    anchor = transform_index(cursor.anchor, op, own)
    head = anchor if cursor.head == cursor.anchor else transform_index(cursor.head, op, own)
    return Cursor(anchor, head)
