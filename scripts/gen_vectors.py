#!/usr/bin/env python3
"""Generate the shared OT test vectors in tests/vectors/ from the Python implementation.

The JavaScript client (web/operation.js, web/cursor.js) runs the same files, so the two
implementations cannot drift apart. The output is deterministic; tests/web/test_js.py
fails when the checked-in files differ from a fresh generation.

    .venv/bin/python scripts/gen_vectors.py          # rewrite tests/vectors/*.json
    .venv/bin/python scripts/gen_vectors.py --check  # exit 1 when they are stale
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from tandem.ot.algebra import compose, transform
from tandem.ot.cursor import Cursor, transform_cursor, transform_index
from tandem.ot.errors import InvalidOperation
from tandem.ot.operation import (
    Component,
    Delete,
    Insert,
    Operation,
    Retain,
    apply,
    check,
    invert,
    normalize,
)
from tandem.testing.scenarios import Scenario  # the client scenarios run on the reference server

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
SEED = 20261126

# Astral characters (one code point, two UTF-16 units), a two-code-point emoji, a
# combining mark, precomposed letters, newlines and CJK: everything the units can trip on.
ALPHABET = ["a", "b", "c", "é", "e\u0301", "\n", "😀", "👍🏽", "𝒳", "漢", " "]

Case = dict[str, Any]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(rng: random.Random, max_len: int) -> str:
    out = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))
    return out[: rng.randint(0, len(out))] if rng.random() < 0.2 else out


def _op(rng: random.Random, doc_len: int) -> Operation:
    """A raw (not necessarily canonical) op that fits a document of ``doc_len`` code points."""
    parts: list[Component] = []
    left = doc_len
    while left > 0 or (not parts and rng.random() < 0.5):
        roll = rng.random()
        if roll < 0.3:
            parts.append(Insert(_text(rng, 3) or "x"))
        if left == 0:
            break
        n = rng.randint(1, left)
        if roll < 0.6:
            parts.append(Retain(n))
        else:
            parts.append(Delete(n))
        left -= n
        if rng.random() < 0.15:
            break  # leave the trailing retain implied
    if rng.random() < 0.2:
        parts.append(Insert(_text(rng, 2) or "y"))
    return tuple(parts)


def _wire(op: Operation) -> list[dict[str, Any]]:
    return msgspec.to_builtins(op)  # type: ignore[no-any-return]


def _apply_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for i in range(count):
        doc = _text(rng, 10)
        # every tenth op is made for a shorter document than the one it meets
        op = _op(rng, len(doc) + (rng.randint(1, 3) if i % 10 == 9 else 0))
        case: Case = {"doc": doc, "op": _wire(op)}
        try:
            case["result"] = apply(doc, op)
        except InvalidOperation as exc:
            case["error"] = str(exc)
        cases.append(case)
    return cases


def _compose_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for _ in range(count):
        doc = _text(rng, 10)
        a = _op(rng, len(doc))
        b = _op(rng, len(apply(doc, a)))
        cases.append({"doc": doc, "a": _wire(a), "b": _wire(b), "result": _wire(compose(a, b))})
    return cases


def _transform_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for _ in range(count):
        doc = _text(rng, 10)
        a = _op(rng, len(doc))
        b = _op(rng, len(doc))
        a_prime, b_prime = transform(a, b)
        cases.append(
            {"doc": doc, "a": _wire(a), "b": _wire(b), "a_prime": _wire(a_prime), "b_prime": _wire(b_prime)}
        )
    return cases


def _invert_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for _ in range(count):
        doc = _text(rng, 10)
        op = _op(rng, len(doc))
        cases.append({"doc": doc, "op": _wire(op), "result": _wire(invert(op, doc))})
    return cases


def _normalize_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for _ in range(count):
        parts: list[Component] = []
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.35:
                parts.append(Retain(rng.randint(1, 4)))
            elif roll < 0.7:
                parts.append(Insert(_text(rng, 3) or "z"))
            else:
                parts.append(Delete(rng.randint(1, 4)))
        cases.append({"components": _wire(tuple(parts)), "result": _wire(normalize(parts))})
    return cases


def _cursor_cases(rng: random.Random, count: int) -> list[Case]:
    cases: list[Case] = []
    for _ in range(count):
        doc = _text(rng, 10)
        op = _op(rng, len(doc))
        own = rng.random() < 0.5
        anchor = rng.randint(0, len(doc))
        head = anchor if rng.random() < 0.4 else rng.randint(0, len(doc))
        moved = transform_cursor(Cursor(anchor, head), op, own)
        cases.append(
            {
                "doc": doc,
                "op": _wire(op),
                "own": own,
                "cursor": {"anchor": anchor, "head": head},
                "index_result": transform_index(anchor, op, own),
                "result": {"anchor": moved.anchor, "head": moved.head},
            }
        )
    return cases


def _check_cases(rng: random.Random, count: int) -> list[Case]:
    """Valid ops, ops too long for their document, and malformed components as JSON."""
    malformed: list[list[Any]] = [
        [{"type": "Retain", "length": 0}],
        [{"type": "Delete", "length": -2}],
        [{"type": "Retain", "length": 1.5}],
        [{"type": "Insert", "content": ""}],
        [{"type": "Insert", "content": "a\ud83d"}],
        [{"type": "Insert", "content": "\ude00b"}],
        [{"type": "Skip", "length": 1}],
    ]
    cases: list[Case] = [{"op": op, "doc_length": None, "valid": False} for op in malformed]
    for _ in range(count):
        doc_len = rng.randint(0, 8)
        op = _op(rng, doc_len + rng.randint(0, 2))
        try:
            check(op, doc_len)
            valid = True
        except InvalidOperation:
            valid = False
        cases.append({"op": _wire(op), "doc_length": doc_len, "valid": valid})
    return cases


def _client_cases(rng: random.Random, count: int) -> list[Case]:
    return [Scenario(rng, _op).run(rng.randint(30, 90)) for _ in range(count)]


GENERATORS: dict[str, tuple[Callable[[random.Random, int], list[Case]], int]] = {
    "apply": (_apply_cases, 200),
    "compose": (_compose_cases, 200),
    "transform": (_transform_cases, 250),
    "invert": (_invert_cases, 100),
    "normalize": (_normalize_cases, 80),
    "cursor": (_cursor_cases, 250),
    "check": (_check_cases, 60),
    "client": (_client_cases, 50),
}


def _dump(case: Case) -> str:
    # Raw UTF-8 keeps the emoji readable; lone surrogates (invalid text, in the check
    # cases only) cannot be UTF-8, so they stay JSON escapes.
    text = json.dumps(case, ensure_ascii=False, separators=(", ", ": "))
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render(kind: str) -> str:
    """The text of tests/vectors/<kind>.json: one case per line so diffs stay readable."""
    make, count = GENERATORS[kind]
    rng = random.Random(f"{SEED}:{kind}")
    cases = make(rng, count)
    lines = ",\n".join("  " + _dump(c) for c in cases)
    return f'{{"kind": "{kind}", "seed": {SEED}, "cases": [\n{lines}\n]}}\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the checked-in vectors are stale")
    args = parser.parse_args(argv)
    stale = []
    for kind in GENERATORS:
        path = VECTORS / f"{kind}.json"
        text = render(kind)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale vectors: {', '.join(stale)}; run scripts/gen_vectors.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
