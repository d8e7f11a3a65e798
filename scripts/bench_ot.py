#!/usr/bin/env python3
"""Throughput of transform, compose and apply, on the workload of transform-bench.js.

    .venv/bin/python scripts/bench_ot.py [--seed 42] [--pairs 10000] [--doc 1000] [--rounds 21]
                                         [--max-edits 5]

The data are generated exactly as ../shared/bench/peers/transform-bench.js generates
them (the same 32-bit generator and the same seed give the same document and ops):
a document of ``--doc`` random letters and ``--pairs`` pairs of ops of 1 to
``--max-edits`` edits each (inserts of 1-8 letters, deletes of 1-8 characters).

* transform: a_i and b_i concurrent on the document; one call gives both a' and b',
  as one ot.js ``TextOperation.transform`` call does.
* compose: a_i, then c_i made on apply(doc, a_i).
* apply: a_i on the document.

Every result is checked against a reference string implementation outside the timed
loops. One untimed warm-up pass, then ``--rounds`` timed passes; the median pass gives
ops/s. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tandem.ot import Delete, Insert, Operation, Retain, apply, compose, normalize, transform

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MASK = 0xFFFFFFFF

Edit = tuple[int, str | int]  # (position, inserted text) or (position, deleted length)


class Mulberry32:
    """transform-bench.js's ``rngFrom``, in unsigned 32-bit arithmetic (Math.imul is a product mod 2^32)."""

    def __init__(self, seed: int) -> None:
        self.a = seed & MASK

    def __call__(self) -> float:
        self.a = (self.a + 0x6D2B79F5) & MASK
        t = self.a
        t = ((t ^ (t >> 15)) * (t | 1)) & MASK
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & MASK)) & MASK
        return ((t ^ (t >> 14)) & MASK) / 4294967296


class Workload:
    def __init__(self, seed: int, max_edits: int) -> None:
        self.rng = Mulberry32(seed)
        self.max_edits = max_edits

    def rand_int(self, n: int) -> int:
        return int(self.rng() * n)

    def rand_str(self, n: int) -> str:
        return "".join(LETTERS[self.rand_int(26)] for _ in range(n))

    def edits(self, doc_len: int) -> list[Edit]:
        """Sorted, non-overlapping edits, drawn as genEdits draws them."""
        n = 1 + self.rand_int(self.max_edits)
        positions = sorted(self.rand_int(doc_len + 1) for _ in range(n))
        out: list[Edit] = []
        cursor = 0
        for i in range(n):
            pos = max(positions[i], cursor)
            limit = (max(positions[i + 1], pos) if i + 1 < n else doc_len) - pos
            if self.rng() < 0.5 and limit > 0:
                length = min(1 + self.rand_int(8), limit)
                out.append((pos, length))
                cursor = pos + length
            else:
                out.append((pos, self.rand_str(1 + self.rand_int(8))))
                cursor = pos
        return out


def ref_apply(doc: str, edits: list[Edit]) -> str:
    out, cursor = [], 0
    for pos, what in edits:
        out.append(doc[cursor:pos])
        cursor = pos
        if isinstance(what, str):
            out.append(what)
        else:
            cursor += what
    return "".join(out) + doc[cursor:]


def to_op(edits: list[Edit]) -> Operation:
    parts: list[Retain | Insert | Delete] = []
    cursor = 0
    for pos, what in edits:
        if pos > cursor:
            parts.append(Retain(pos - cursor))
        cursor = pos
        if isinstance(what, str):
            parts.append(Insert(what))
        else:
            parts.append(Delete(what))
            cursor += what
    return normalize(parts)


def median_pass(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def busy_seconds() -> float | None:
    """All-core busy seconds from /proc/stat, to report how much else ran meanwhile."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--doc", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--max-edits", type=int, default=5)
    args = parser.parse_args()

    work = Workload(args.seed, args.max_edits)
    base = work.rand_str(args.doc)
    raw_a, raw_b, raw_c, after_a = [], [], [], []
    for _ in range(args.pairs):
        a, b = work.edits(len(base)), work.edits(len(base))
        doc_a = ref_apply(base, a)
        raw_a.append(a)
        raw_b.append(b)
        raw_c.append(work.edits(len(doc_a)))
        after_a.append(doc_a)
    A, B, C = [to_op(e) for e in raw_a], [to_op(e) for e in raw_b], [to_op(e) for e in raw_c]

    for i in range(args.pairs):  # correctness, untimed
        assert apply(base, A[i]) == after_a[i], f"apply mismatch at {i}"
        assert apply(base, compose(A[i], C[i])) == ref_apply(after_a[i], raw_c[i]), f"compose mismatch at {i}"
        a1, b1 = transform(A[i], B[i])
        assert apply(after_a[i], b1) == apply(apply(base, B[i]), a1), f"transform does not converge at {i}"

    pairs = list(zip(A, B, strict=True))
    sequential = list(zip(A, C, strict=True))
    # Like the JS loops, keep only a sum of result lengths, not the results.
    cases: dict[str, Callable[[], object]] = {
        "transform": lambda: sum(len(transform(a, b)[0]) for a, b in pairs),
        "compose": lambda: sum(len(compose(a, c)) for a, c in sequential),
        "apply": lambda: sum(len(apply(base, a)) for a in A),
    }
    busy0, cpu0, wall0 = busy_seconds(), time.process_time(), time.perf_counter()
    medians = {name: median_pass(fn, args.rounds) for name, fn in cases.items()}
    cpu, wall, busy1 = time.process_time() - cpu0, time.perf_counter() - wall0, busy_seconds()
    other = None if busy0 is None or busy1 is None else round(max(0.0, busy1 - busy0 - cpu) / wall, 3)
    edits_per_op = sum(len(e) for e in raw_a + raw_b) / (2 * args.pairs)
    print(
        json.dumps(
            {
                "bench": "bench_ot",
                "seed": args.seed,
                "pairs": args.pairs,
                "doc_length": args.doc,
                "rounds": args.rounds,
                "mean_edits_per_op": round(edits_per_op, 2),
                "ops_per_s": {name: round(args.pairs / m) for name, m in medians.items()},
                "median_ms": {name: round(m * 1000, 3) for name, m in medians.items()},
                "other_cpu_util": other,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
