"""Text operations over Unicode code points, and their algebra.

An operation walks a document from its start with three kinds of component:

* ``Retain(length)``: keep the next ``length`` code points.
* ``Insert(content)``: insert ``content`` at the current position.
* ``Delete(length)``: remove the next ``length`` code points.

Whatever the components do not reach is kept: a trailing ``Retain`` is implied, so the
canonical form never ends with one. Positions count code points, which is what a Python
``str`` indexes, so ``len()`` and slicing need no conversion ("a😀b" has length 3).

An ``Operation`` is an immutable tuple of frozen components in canonical form (see
`normalize`), so ``==`` compares effect. The components are msgspec Structs tagged by
"type", so an op decodes straight from a wire frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated, TypeAlias

import msgspec

from ot.errors import InvalidOperation

# Lengths beyond JavaScript's safe integers could not round-trip through a browser client.
MAX_LENGTH = 2**53 - 1

Length = Annotated[int, msgspec.Meta(ge=1, le=MAX_LENGTH)]


class Retain(msgspec.Struct, frozen=True, tag=True):
    length: Length


class Insert(msgspec.Struct, frozen=True, tag=True):
    content: Annotated[str, msgspec.Meta(min_length=1)]


class Delete(msgspec.Struct, frozen=True, tag=True):
    length: Length


Component: TypeAlias = Retain | Insert | Delete
Operation: TypeAlias = tuple[Component, ...]

IDENTITY: Operation = ()

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Builder:
    """Appends components while keeping the canonical form.

    Neighbours of one kind merge, and an insert that follows a delete moves in front of
    it (deleting then inserting at one position equals inserting then deleting), so two
    operations with the same effect are built equal, as in ot.js.
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[Component] = []

    def retain(self, n: int) -> None:
        if n <= 0:
            return
        parts = self.parts
        if parts and type(parts[-1]) is Retain:
            parts[-1] = Retain(parts[-1].length + n)
        else:
            parts.append(Retain(n))

    def insert(self, s: str) -> None:
        if not s:
            return
        parts = self.parts
        if not parts:
            parts.append(Insert(s))
            return
        last = parts[-1]
        if type(last) is Insert:
            parts[-1] = Insert(last.content + s)
        elif type(last) is Delete:
            if len(parts) >= 2 and type(parts[-2]) is Insert:
                parts[-2] = Insert(parts[-2].content + s)
            else:
                parts.insert(len(parts) - 1, Insert(s))
        else:
            parts.append(Insert(s))

    def delete(self, n: int) -> None:
        if n <= 0:
            return
        parts = self.parts
        if parts and type(parts[-1]) is Delete:
            parts[-1] = Delete(parts[-1].length + n)
        else:
            parts.append(Delete(n))

    def append(self, c: Component) -> None:
        if type(c) is Retain:
            self.retain(c.length)
        elif type(c) is Insert:
            self.insert(c.content)
        else:
            self.delete(c.length)  # type: ignore[union-attr]

    def extend(self, components: Sequence[Component], start: int) -> None:
        for i in range(start, len(components)):
            self.append(components[i])

    def build(self) -> Operation:
        parts = self.parts
        if parts and type(parts[-1]) is Retain:
            parts.pop()
        return tuple(parts)


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


# The two algebraic functions below walk both ops at once. Each keeps its current,
# possibly partly consumed, component as a kind code and a value: an int length for
# retains and deletes, the remaining text for inserts. Past its last component an op
# retains the rest of the document, which is how implied trailing retains are honoured.
_RETAIN, _INSERT, _DELETE, _END = 0, 1, 2, 3


def _split(c: Component) -> tuple[int, int | str]:
    t = type(c)
    if t is Retain:
        return _RETAIN, c.length  # type: ignore[union-attr]
    if t is Insert:
        return _INSERT, c.content  # type: ignore[union-attr]
    return _DELETE, c.length  # type: ignore[union-attr]


def _rest(kind: int, value: int | str) -> Component:
    if kind == _RETAIN:
        return Retain(value)  # type: ignore[arg-type]
    if kind == _INSERT:
        return Insert(value)  # type: ignore[arg-type]
    return Delete(value)  # type: ignore[arg-type]


def compose(a: Sequence[Component], b: Sequence[Component]) -> Operation:
    """One op with the effect of ``a`` followed by ``b``.

    Law: ``apply(apply(s, a), b) == apply(s, compose(a, b))``; compose is associative.
    """
    out = _Builder()
    ia, ib = 0, 0
    na, nb = len(a), len(b)
    ka, va = _split(a[0]) if na else (_END, 0)
    kb, vb = _split(b[0]) if nb else (_END, 0)
    while True:
        if ka == _DELETE:
            out.delete(va)  # type: ignore[arg-type]
            ia += 1
            ka, va = _split(a[ia]) if ia < na else (_END, 0)
            continue
        if kb == _INSERT:
            out.insert(vb)  # type: ignore[arg-type]
            ib += 1
            kb, vb = _split(b[ib]) if ib < nb else (_END, 0)
            continue
        if ka == _END:
            # a retains the rest: what is left of b passes through unchanged
            if kb != _END:
                out.append(_rest(kb, vb))
                out.extend(b, ib + 1)
            break
        if kb == _END:
            # b retains the rest: what is left of a passes through unchanged
            out.append(_rest(ka, va))
            out.extend(a, ia + 1)
            break
        # ka is Retain or Insert; kb is Retain or Delete
        if ka == _INSERT:
            la = len(va)  # type: ignore[arg-type]
            lb: int = vb  # type: ignore[assignment]
            n = la if la < lb else lb
            if kb == _RETAIN:
                out.insert(va[:n])  # type: ignore[index]
            # Insert then Delete: the inserted text is removed again; nothing to emit
            if n == la:
                ia += 1
                ka, va = _split(a[ia]) if ia < na else (_END, 0)
            else:
                va = va[n:]  # type: ignore[index]
        else:
            la = va  # type: ignore[assignment]
            lb = vb  # type: ignore[assignment]
            n = la if la < lb else lb
            if kb == _RETAIN:
                out.retain(n)
            else:
                out.delete(n)
            if n == la:
                ia += 1
                ka, va = _split(a[ia]) if ia < na else (_END, 0)
            else:
                va = la - n
        if n == lb:
            ib += 1
            kb, vb = _split(b[ib]) if ib < nb else (_END, 0)
        else:
            vb = lb - n
    return out.build()


def transform(a: Sequence[Component], b: Sequence[Component]) -> tuple[Operation, Operation]:
    """Transform two concurrent ops made on the same document.

    Returns ``(a_prime, b_prime)`` with
    ``apply(apply(s, a), b_prime) == apply(apply(s, b), a_prime)``.

    Tie rule: where both insert at one position, ``a``'s text goes to the left. Call it
    with ``a`` as the op that is committed later: the incoming op on the server, the
    client's own pending op on a client (as ot.js and ShareDB do).
    """
    a_out = _Builder()
    b_out = _Builder()
    ia, ib = 0, 0
    na, nb = len(a), len(b)
    ka, va = _split(a[0]) if na else (_END, 0)
    kb, vb = _split(b[0]) if nb else (_END, 0)
    while True:
        if ka == _INSERT:
            a_out.insert(va)  # type: ignore[arg-type]
            b_out.retain(len(va))  # type: ignore[arg-type]
            ia += 1
            ka, va = _split(a[ia]) if ia < na else (_END, 0)
            continue
        if kb == _INSERT:
            a_out.retain(len(vb))  # type: ignore[arg-type]
            b_out.insert(vb)  # type: ignore[arg-type]
            ib += 1
            kb, vb = _split(b[ib]) if ib < nb else (_END, 0)
            continue
        if ka == _END:
            # a keeps the rest, so b's remaining retains and deletes apply as they are
            if kb != _END:
                b_out.append(_rest(kb, vb))
                b_out.extend(b, ib + 1)
            break
        if kb == _END:
            a_out.append(_rest(ka, va))
            a_out.extend(a, ia + 1)
            break
        la: int = va  # type: ignore[assignment]
        lb: int = vb  # type: ignore[assignment]
        n = la if la < lb else lb
        if ka == _RETAIN:
            if kb == _RETAIN:
                a_out.retain(n)
                b_out.retain(n)
            else:
                b_out.delete(n)
        elif kb == _RETAIN:
            a_out.delete(n)
        # Delete against Delete: both removed the same text; neither side emits anything
        if n == la:
            ia += 1
            ka, va = _split(a[ia]) if ia < na else (_END, 0)
        else:
            va = la - n
        if n == lb:
            ib += 1
            kb, vb = _split(b[ib]) if ib < nb else (_END, 0)
        else:
            vb = lb - n
    return a_out.build(), b_out.build()


def rebase(op: Sequence[Component], committed: Iterable[Sequence[Component]]) -> Operation:
    """Transform ``op`` through the ops committed after its base, in revision order.

    This is the server's whole OT step: the incoming op wins ties against history, so
    its inserts go left of inserts committed earlier at the same position.
    """
    current: Sequence[Component] = op
    for other in committed:
        current, _ = transform(current, other)
    return tuple(current)


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
