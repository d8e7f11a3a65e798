"""compose, transform and rebase: the two-op walks at the heart of OT.

They are the hot loops of the server and of every client, so they are written for
CPython: no helper calls per component, and the output is built through three pending
values per op (a retain count, then the text inserted and the count deleted since that
retain) that become components only when the kind changes. That yields the canonical
form of `ot.operation.normalize` directly: neighbours merged, insert before delete, no
trailing retain.

Past its last component an op retains the rest of the document, which is how implied
trailing retains are honoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tandem.ot.operation import Component, Delete, Insert, Operation, Retain


def compose(a: Sequence[Component], b: Sequence[Component]) -> Operation:
    """One op with the effect of ``a`` followed by ``b``.

    Law: ``apply(apply(s, a), b) == apply(s, compose(a, b))``; compose is associative.
    """
    out: list[Component] = []
    r, ins, d = 0, "", 0  # pending output
    na, nb = len(a), len(b)
    ia = ib = 0
    ka: type | None = None  # kind of a's current component, None once consumed
    kb: type | None = None
    va = ""  # the rest of a's current insert
    la = lb = 0  # the rest of the current retain or delete
    while True:
        if ka is None:
            if ia == na:
                break
            c = a[ia]
            ia += 1
            ka = type(c)
            if ka is Delete:  # deleted before b sees it
                if r:
                    out.append(Retain(r))
                    r = 0
                d += c.length  # type: ignore[union-attr]
                ka = None
                continue
            if ka is Insert:
                va = c.content  # type: ignore[union-attr]
                la = len(va)
            else:
                la = c.length  # type: ignore[union-attr]
        if kb is None:
            if ib == nb:
                break
            c = b[ib]
            ib += 1
            kb = type(c)
            if kb is Insert:  # inserted after a's effect
                if r:
                    out.append(Retain(r))
                    r = 0
                ins += c.content  # type: ignore[union-attr]
                kb = None
                continue
            lb = c.length  # type: ignore[union-attr]
        # a's current is a Retain or an Insert; b's is a Retain or a Delete
        n = la if la < lb else lb
        if ka is Insert:
            if kb is Retain:
                if r:
                    out.append(Retain(r))
                    r = 0
                ins += va[:n] if n < la else va
            # an Insert then a Delete of it: nothing
            va = va[n:]
        elif kb is Retain:
            if ins:
                out.append(Insert(ins))
                ins = ""
            if d:
                out.append(Delete(d))
                d = 0
            r += n
        else:
            if r:
                out.append(Retain(r))
                r = 0
            d += n
        la -= n
        lb -= n
        if not la:
            ka = None
        if not lb:
            kb = None
    if ka is not None or ia < na:
        # b ended: what is left of a passes through unchanged
        return _finish(out, r, ins, d, ka, va if ka is Insert else la, a, ia)
    # a ended (or both): what is left of b passes through unchanged
    return _finish(out, r, ins, d, kb, lb, b, ib)


def transform(a: Sequence[Component], b: Sequence[Component]) -> tuple[Operation, Operation]:
    """Transform two concurrent ops made on the same document.

    Returns ``(a_prime, b_prime)`` with
    ``apply(apply(s, a), b_prime) == apply(apply(s, b), a_prime)``.

    Tie rule: where both insert at one position, ``a``'s text goes to the left. Call it
    with ``a`` as the op that is committed later: the incoming op on the server, the
    client's own pending op on a client (as ot.js and ShareDB do).
    """
    # The common case, edits of the two ops apart from each other, goes segment by
    # segment: a canonical op is a series of segments [Retain] [Insert] [Delete], and
    # a segment that lies wholly before the other op's next one passes into the output
    # as it is, its Insert and Delete reused, its retain grown or shrunk by what the
    # other op changed before it. Anything else (segments that touch or overlap, an op
    # that is not canonical) goes to the general walk, which decides ties.
    na, nb = len(a), len(b)
    ia = ib = 0
    a_out: list[Component] = []
    b_out: list[Component] = []
    ar = br = 0  # pending retains of a_prime and b_prime
    cur = 0  # the base position both ops have reached
    ea = eb = 0  # end (past the delete) of the current segments; pa, pb their starts
    need_a = need_b = True
    done_a = done_b = False
    while True:
        if need_a:
            need_a = False
            if ia < na:
                c: Component | None = a[ia]
                ins_a: Component | None = None
                del_a: Component | None = None
                if type(c) is Retain:
                    pa = ea + c.length
                    ia += 1
                    c = a[ia] if ia < na else None
                elif ia:
                    return _transform_walk(a, b)  # an edit right after an edit
                else:
                    pa = 0
                if type(c) is Insert:
                    ins_a = c
                    ia += 1
                    c = a[ia] if ia < na else None
                ea = pa
                if type(c) is Delete:
                    del_a = c
                    ea += c.length
                    ia += 1
                if ins_a is None and del_a is None:
                    if ia < na:
                        return _transform_walk(a, b)  # a retain after a retain
                    done_a = True  # a trailing retain
            else:
                done_a = True
        if need_b:
            need_b = False
            if ib < nb:
                c = b[ib]
                ins_b: Component | None = None
                del_b: Component | None = None
                if type(c) is Retain:
                    pb = eb + c.length
                    ib += 1
                    c = b[ib] if ib < nb else None
                elif ib:
                    return _transform_walk(a, b)
                else:
                    pb = 0
                if type(c) is Insert:
                    ins_b = c
                    ib += 1
                    c = b[ib] if ib < nb else None
                eb = pb
                if type(c) is Delete:
                    del_b = c
                    eb += c.length
                    ib += 1
                if ins_b is None and del_b is None:
                    if ib < nb:
                        return _transform_walk(a, b)
                    done_b = True
            else:
                done_b = True
        if done_a:
            if done_b:
                return tuple(a_out), tuple(b_out)
        elif done_b or ((pa < pb or (pa == pb and pa == ea)) and ea <= pb):
            # a's segment comes first (an insert alone wins a tie)
            gap = pa - cur
            ar += gap
            if ar:
                a_out.append(Retain(ar))
                ar = 0
            elif a_out:
                return _transform_walk(a, b)  # b deleted all between two edits of a: they merge
            br += gap
            if ins_a is not None:
                a_out.append(ins_a)
                br += len(ins_a.content)  # type: ignore[union-attr]
            if del_a is not None:
                a_out.append(del_a)
            cur = ea
            need_a = True
            continue
        elif not ((pb < pa or (pb == pa and pb == eb and ins_a is None)) and eb <= pa):
            return _transform_walk(a, b)  # the segments touch or overlap
        # b's segment comes first
        gap = pb - cur
        br += gap
        if br:
            b_out.append(Retain(br))
            br = 0
        elif b_out:
            return _transform_walk(a, b)
        ar += gap
        if ins_b is not None:
            b_out.append(ins_b)
            ar += len(ins_b.content)  # type: ignore[union-attr]
        if del_b is not None:
            b_out.append(del_b)
        cur = eb
        need_b = True


def _transform_walk(a: Sequence[Component], b: Sequence[Component]) -> tuple[Operation, Operation]:
    """`transform` in general: both ops walked component by component."""
    a_out: list[Component] = []
    b_out: list[Component] = []
    ar, ai, ad = 0, "", 0  # pending a_prime
    br, bi, bd = 0, "", 0  # pending b_prime
    na, nb = len(a), len(b)
    ia = ib = 0
    ka: type | None = None
    kb: type | None = None
    la = lb = 0
    while True:
        if ka is None:
            if ia == na:
                break
            c = a[ia]
            ia += 1
            ka = type(c)
            if ka is Insert:  # a's inserts first: the tie goes to a
                s: str = c.content  # type: ignore[union-attr]
                if ar:
                    a_out.append(Retain(ar))
                    ar = 0
                ai += s
                if bi:
                    b_out.append(Insert(bi))
                    bi = ""
                if bd:
                    b_out.append(Delete(bd))
                    bd = 0
                br += len(s)
                ka = None
                continue
            la = c.length  # type: ignore[union-attr]
        if kb is None:
            if ib == nb:
                break
            c = b[ib]
            ib += 1
            kb = type(c)
            if kb is Insert:
                s = c.content  # type: ignore[union-attr]
                if ai:
                    a_out.append(Insert(ai))
                    ai = ""
                if ad:
                    a_out.append(Delete(ad))
                    ad = 0
                ar += len(s)
                if br:
                    b_out.append(Retain(br))
                    br = 0
                bi += s
                kb = None
                continue
            lb = c.length  # type: ignore[union-attr]
        n = la if la < lb else lb
        if ka is Retain:
            if kb is Retain:
                if ai:
                    a_out.append(Insert(ai))
                    ai = ""
                if ad:
                    a_out.append(Delete(ad))
                    ad = 0
                ar += n
                if bi:
                    b_out.append(Insert(bi))
                    bi = ""
                if bd:
                    b_out.append(Delete(bd))
                    bd = 0
                br += n
            else:
                if br:
                    b_out.append(Retain(br))
                    br = 0
                bd += n
        elif kb is Retain:
            if ar:
                a_out.append(Retain(ar))
                ar = 0
            ad += n
        # a Delete against a Delete: both removed the same text; neither side emits anything
        la -= n
        lb -= n
        if not la:
            ka = None
        if not lb:
            kb = None
    # One op ended, so it retains the rest: the other's remaining retains and deletes
    # apply as they are, and its inserts only lengthen the ended side's (dropped) retain.
    if ka is not None or ia < na:
        if bi:
            b_out.append(Insert(bi))
        if bd:
            b_out.append(Delete(bd))
        return _finish(a_out, ar, ai, ad, ka, la, a, ia), tuple(b_out)
    if ai:
        a_out.append(Insert(ai))
    if ad:
        a_out.append(Delete(ad))
    if kb is not None or ib < nb:
        return tuple(a_out), _finish(b_out, br, bi, bd, kb, lb, b, ib)
    if bi:
        b_out.append(Insert(bi))
    if bd:
        b_out.append(Delete(bd))
    return tuple(a_out), tuple(b_out)


def _finish(
    out: list[Component],
    r: int,
    ins: str,
    d: int,
    kind: type | None,
    value: int | str,
    op: Sequence[Component],
    start: int,
) -> Operation:
    """The canonical op of ``out`` and its pending values, then the rest of ``op``.

    The rest is the partly consumed component (``kind`` with what is left of it,
    ``value``; ``kind`` None if there is none) and the components from ``op[start]`` on.
    Inlines `ot.operation._Builder`, as the walks do: this runs once per call.
    """
    if kind is Retain:
        if ins:
            out.append(Insert(ins))
            ins = ""
        if d:
            out.append(Delete(d))
            d = 0
        r += value  # type: ignore[operator]
    elif kind is not None:
        if r:
            out.append(Retain(r))
            r = 0
        if kind is Insert:
            ins += value  # type: ignore[operator]
        else:
            d += value  # type: ignore[operator]
    for k in range(start, len(op)):
        c = op[k]
        t = type(c)
        if t is Retain:
            if ins:
                out.append(Insert(ins))
                ins = ""
            if d:
                out.append(Delete(d))
                d = 0
            r += c.length  # type: ignore[union-attr]
            continue
        if r:
            out.append(Retain(r))
            r = 0
        if t is Insert:
            ins += c.content  # type: ignore[union-attr]
        else:
            d += c.length  # type: ignore[union-attr]
    if ins:
        out.append(Insert(ins))
    if d:
        out.append(Delete(d))
    return tuple(out)


def rebase(op: Sequence[Component], committed: Iterable[Sequence[Component]]) -> Operation:
    """Transform ``op`` through the ops committed after its base, in revision order.

    This is the server's whole OT step: the incoming op wins ties against history, so
    its inserts go left of inserts committed earlier at the same position. Always one
    op at a time: composing the history first can order inserts next to deleted text
    differently (see `ot.laws.transform_respects_compose`).
    """
    current: Sequence[Component] = op
    for other in committed:
        current, _ = transform(current, other)
    return tuple(current)
