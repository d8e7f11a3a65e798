"""Text operations over Unicode code points, and the functions of one op.

An operation walks a document from its start with three kinds of component:

* ``Retain(length)``: keep the next ``length`` code points.
* ``Insert(content)``: insert ``content`` at the current position.
* ``Delete(length)``: remove the next ``length`` code points.

Whatever the components do not reach is kept: a trailing ``Retain`` is implied, so the
canonical form never ends with one. Positions count code points, which is what a Python
``str`` indexes, so ``len()`` and slicing need no conversion ("a😀b" has length 3).

An ``Operation`` is an immutable tuple of frozen components in canonical form (see
`normalize`), so ``==`` compares effect. The components are msgspec Structs tagged by
"type", so an op decodes straight from a wire frame. The walks over two ops (`compose`,
`transform`, `rebase`) are in `ot.algebra`, which builds on these types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated, TypeAlias

import msgspec

from tandem.ot.errors import InvalidOperation

# Lengths beyond JavaScript's safe integers could not round-trip through a browser client.
MAX_LENGTH = 2**53 - 1

Length = Annotated[int, msgspec.Meta(ge=1, le=MAX_LENGTH)]


class Retain(msgspec.Struct, frozen=True, tag=True, gc=False):
    length: Length


class Insert(msgspec.Struct, frozen=True, tag=True, gc=False):
    content: Annotated[str, msgspec.Meta(min_length=1)]


class Delete(msgspec.Struct, frozen=True, tag=True, gc=False):
    length: Length


Component: TypeAlias = Retain | Insert | Delete
Operation: TypeAlias = tuple[Component, ...]

IDENTITY: Operation = ()

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Builder:
    """Appends components while keeping the canonical form.

    Neighbours of one kind merge, and an insert that follows a delete moves in front of
    it (deleting then inserting at one position equals inserting then deleting), so two
    operations with the same effect are built equal, as in ot.js. Built as finished
    ``parts`` plus three pending values: a retain count, then the text inserted and the
    count deleted since it. They become components only when the kind changes, and a
    pending retain at the end is the implied trailing retain. The walks of ot.algebra
    inline the same scheme on local variables, for speed.
    """

    __slots__ = ("parts", "r", "ins", "d")

    def __init__(self, parts: list[Component] | None = None, r: int = 0, ins: str = "", d: int = 0) -> None:
        self.parts: list[Component] = [] if parts is None else parts
        self.r, self.ins, self.d = r, ins, d

    def retain(self, n: int) -> None:
        if n <= 0:
            return
        if self.ins:
            self.parts.append(Insert(self.ins))
            self.ins = ""
        if self.d:
            self.parts.append(Delete(self.d))
            self.d = 0
        self.r += n

    def insert(self, s: str) -> None:
        if not s:
            return
        if self.r:
            self.parts.append(Retain(self.r))
            self.r = 0
        self.ins += s

    def delete(self, n: int) -> None:
        if n <= 0:
            return
        if self.r:
            self.parts.append(Retain(self.r))
            self.r = 0
        self.d += n

    def append(self, c: Component) -> None:
        t = type(c)
        if t is Retain:
            self.retain(c.length)  # type: ignore[union-attr]
        elif t is Insert:
            self.insert(c.content)  # type: ignore[union-attr]
        else:
            self.delete(c.length)  # type: ignore[union-attr]

    def build(self) -> Operation:
        if self.ins:
            self.parts.append(Insert(self.ins))
        if self.d:
            self.parts.append(Delete(self.d))
        return tuple(self.parts)


def normalize(components: Iterable[Component]) -> Operation:
    """The canonical form: neighbours merged, empty parts dropped, no trailing retain.

    Idempotent: ``normalize(normalize(c)) == normalize(c)``.
    """
    builder = _Builder()
    for c in components:
        builder.append(c)
    return builder.build()


def check(components: Sequence[Component], doc_length: int | None = None) -> None:
    """Raise `InvalidOperation` naming the first problem of a component list.

    Checks what a typed decoder cannot: each component's own constraints (for
    components built in Python), lone surrogates in inserted text, and, given
    ``doc_length``, that retains and deletes do not reach past the document's end.
    """
    spanned = 0
    for index, c in enumerate(components):
        if type(c) is Insert:
            if not isinstance(c.content, str) or not c.content:
                raise InvalidOperation(f"component {index}: Insert content must be a non-empty string")
            if _LONE_SURROGATE.search(c.content):
                raise InvalidOperation(f"component {index}: Insert content holds a lone surrogate")
        elif type(c) is Retain or type(c) is Delete:
            n = c.length
            if type(n) is not int or not 1 <= n <= MAX_LENGTH:
                raise InvalidOperation(
                    f"component {index}: {type(c).__name__} length must be a positive integer, got {n!r}"
                )
            spanned += n
        else:
            raise InvalidOperation(f"component {index}: expected Retain, Insert or Delete, got {c!r}")
    if doc_length is not None and spanned > doc_length:
        raise InvalidOperation(f"op spans {spanned} code points but the document has {doc_length}")


def span(op: Sequence[Component]) -> int:
    """How many code points of its base document an op walks over (retains + deletes)."""
    return sum(c.length for c in op if not isinstance(c, Insert))


def length_delta(op: Sequence[Component]) -> int:
    """How much an op changes the document's length."""
    delta = 0
    for c in op:
        if type(c) is Insert:
            delta += len(c.content)
        elif type(c) is Delete:
            delta -= c.length
    return delta


def apply(text: str, op: Sequence[Component]) -> str:
    """The text after ``op``; raises `InvalidOperation` when ``op`` does not fit ``text``."""
    pieces: list[str] = []
    pos = 0
    end = len(text)
    for c in op:
        t = type(c)
        if t is Insert:
            pieces.append(c.content)  # type: ignore[union-attr]
            continue
        nxt = pos + c.length  # type: ignore[union-attr]
        if nxt > end:
            raise InvalidOperation(f"op spans {span(op)} code points but the document has {end}")
        if t is Retain:
            pieces.append(text[pos:nxt])
        pos = nxt
    pieces.append(text[pos:])
    return "".join(pieces)


def invert(op: Sequence[Component], text: str) -> Operation:
    """The op that undoes ``op`` on the text it was applied to.

    Law: ``apply(apply(s, a), invert(a, s)) == s``.
    """
    check(op, len(text))
    builder = _Builder()
    pos = 0
    for c in op:
        if type(c) is Retain:
            builder.retain(c.length)
            pos += c.length
        elif type(c) is Insert:
            builder.delete(len(c.content))
        else:
            builder.insert(text[pos : pos + c.length])  # type: ignore[union-attr]
            pos += c.length  # type: ignore[union-attr]
    return builder.build()


def insert_op(position: int, content: str) -> Operation:
    """An op inserting ``content`` at ``position``."""
    builder = _Builder()
    builder.retain(position)
    builder.insert(content)
    return builder.build()


def delete_op(position: int, length: int) -> Operation:
    """An op deleting ``length`` code points from ``position``."""
    builder = _Builder()
    builder.retain(position)
    builder.delete(length)
    return builder.build()


def replace_op(position: int, length: int, content: str) -> Operation:
    """An op replacing the ``length`` code points from ``position`` with ``content``."""
    builder = _Builder()
    builder.retain(position)
    builder.insert(content)
    builder.delete(length)
    return builder.build()


def replacement(old: str, new: str) -> Operation:
    """An op turning ``old`` into ``new`` that keeps their common prefix and suffix."""
    if old == new:
        return IDENTITY
    limit = min(len(old), len(new))
    p = 0
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return replace_op(p, len(old) - p - s, new[p : len(new) - s])
