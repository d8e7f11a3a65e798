"""The laws of the operation algebra, as plain checks.

Each function takes one example and raises `LawViolation`, naming the law and what
differed, when the example breaks the law. The property tests (tests/ot/test_laws.py)
and the fuzz tool (scripts/fuzz) run the same checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tandem.ot.algebra import compose, transform
from tandem.ot.cursor import transform_index
from tandem.ot.operation import Component, Delete, Insert, Operation, apply, invert, normalize


class LawViolation(AssertionError):
    """An example broke a law."""


def _expect(ok: bool, law: str, detail: str) -> None:
    if not ok:
        raise LawViolation(f"{law}: {detail}")


def compose_applies(s: str, a: Operation, b: Operation) -> None:
    """apply(apply(s, a), b) == apply(s, compose(a, b))"""
    stepwise, composed = apply(apply(s, a), b), apply(s, compose(a, b))
    _expect(stepwise == composed, "compose", f"stepwise gives {stepwise!r}, composed gives {composed!r}")


def compose_associative(s: str, a: Operation, b: Operation, c: Operation) -> None:
    """compose(compose(a, b), c) == compose(a, compose(b, c))"""
    left, right = compose(compose(a, b), c), compose(a, compose(b, c))
    _expect(left == right, "associativity", f"(ab)c = {left!r}, a(bc) = {right!r}")


def transform_converges(s: str, a: Operation, b: Operation) -> None:
    """TP1: apply(apply(s, a), b') == apply(apply(s, b), a') for (a', b') = transform(a, b)"""
    a_prime, b_prime = transform(a, b)
    via_a, via_b = apply(apply(s, a), b_prime), apply(apply(s, b), a_prime)
    _expect(via_a == via_b, "TP1", f"a then b' gives {via_a!r}, b then a' gives {via_b!r}")


def transform_respects_compose(s: str, a: Operation, b1: Operation, b2: Operation) -> None:
    """Transforming through compose(b1, b2) equals transforming through b1, then b2...

    ...exactly, when ``a`` inserts nothing, or ``b1`` and ``b2`` insert nothing, or they
    delete nothing. Otherwise the two results hold the same text up to the order of
    inserts next to text that ``b`` deleted: composing forgets on which side of a
    deleted range an insert stood (s = "xyz", a inserts "A" at 1, b1 deletes "x", b2
    inserts "B" at 0: "BAyz" at once, "AByz" in steps). So history is rebased one op
    at a time (`ot.rebase`), never composed first.
    """
    b = compose(b1, b2)
    a_whole, b_whole = transform(a, b)
    a1, b1_prime = transform(a, b1)
    a2, b2_prime = transform(a1, b2)
    b_steps = compose(b1_prime, b2_prime)
    law = "transform through compose"
    if not _inserts(a) or not (_inserts(b1) or _inserts(b2)) or not (_deletes(b1) or _deletes(b2)):
        _expect(a_whole == a2, law, f"a' is {a_whole!r} at once, {a2!r} in steps")
        _expect(b_whole == b_steps, law, f"b' is {b_whole!r} at once, {b_steps!r} in steps")
    whole, steps = apply(apply(s, b), a_whole), apply(apply(s, b), a2)
    _expect(
        sorted(whole) == sorted(steps), law, f"{whole!r} at once and {steps!r} in steps differ in content"
    )


def _inserts(op: Operation) -> bool:
    return any(type(c) is Insert for c in op)


def _deletes(op: Operation) -> bool:
    return any(type(c) is Delete for c in op)


def invert_undoes(s: str, a: Operation) -> None:
    """apply(apply(s, a), invert(a, s)) == s"""
    back = apply(apply(s, a), invert(a, s))
    _expect(back == s, "invert", f"undoing gives {back!r}, not {s!r}")


def _deleted(s: str, op: Operation) -> list[bool]:
    """For each code point of ``s``, whether ``op`` deletes it."""
    gone = [False] * len(s)
    pos = 0
    for c in op:
        if type(c) is Delete:
            gone[pos : pos + c.length] = [True] * c.length
        if type(c) is not Insert:
            pos += c.length  # type: ignore[union-attr]
    return gone


def cursor_follows_text(s: str, a: Operation) -> None:
    """A cursor keeps its neighbouring character where that character survives.

    Another user's cursor keeps the character on its left (their insert lands after
    it); the owner's cursor keeps the one on its right (it follows what it typed).
    """
    out = apply(s, a)
    gone = _deleted(s, a)
    last = -1
    for i in range(len(s) + 1):
        other, own = transform_index(i, a), transform_index(i, a, own=True)
        _expect(0 <= other <= own <= len(out), "cursor", f"index {i} went to {other}/{own} of {len(out)}")
        _expect(other >= last, "cursor", f"index {i} went to {other}, before index {i - 1} at {last}")
        last = other
        if i > 0 and not gone[i - 1]:
            _expect(out[other - 1] == s[i - 1], "cursor", f"index {i} lost the character on its left")
        if i < len(s) and not gone[i]:
            _expect(out[own] == s[i], "cursor", f"own index {i} lost the character on its right")


def results_are_canonical(s: str, a: Operation, b: Operation) -> None:
    """What compose, transform and invert return is in canonical form (so == compares effect)."""
    a_prime, b_prime = transform(a, b)
    results = {"transform": a_prime, "transform'": b_prime, "invert": invert(a, s)}
    results["compose"] = compose(a, invert(a, s))
    for name, op in results.items():
        _expect(normalize(op) == op, "canonical", f"{name} gave {op!r}, not canonical")


def normalize_is_canonical(s: str, components: Sequence[Component]) -> None:
    """normalize is idempotent and keeps the effect."""
    once = normalize(components)
    _expect(normalize(once) == once, "normalize", f"{once!r} normalizes again to {normalize(once)!r}")
    _expect(apply(s, once) == apply(s, components), "normalize", f"{once!r} changes the effect")


Law = Callable[..., None]

LAWS: dict[str, Law] = {
    "compose": compose_applies,
    "associativity": compose_associative,
    "tp1": transform_converges,
    "transform_compose": transform_respects_compose,
    "invert": invert_undoes,
    "cursor": cursor_follows_text,
    "normalize": normalize_is_canonical,
    "canonical": results_are_canonical,
}
