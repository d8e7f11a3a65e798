"""Fuzz the laws of the operation algebra (ot/laws.py) on random documents and ops.

    scripts/fuzz [--seconds N] [--count N] [--seed S] [--law NAME]...

Runs every law (or the ones named) in rounds until ``--seconds`` have passed or each
law has seen ``--count`` examples, whichever comes first (10 seconds if neither is
given). Prints the examples run per law; on a failure, prints the shrunk, minimal
example as one JSON line and exits 1. The same seed replays the same examples.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Hypothesis keeps caches in its storage directory: keep it in the repository, wherever this runs from.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(ROOT / ".hypothesis"))

import msgspec  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tandem.ot.laws import LAWS, Law  # noqa: E402
from tandem.testing.strategies import LAW_CASES  # noqa: E402

BATCH = 50  # examples per law per round: the granularity of --seconds


class Failure(Exception):
    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(report["error"])
        self.report = report


def run_batch(name: str, law: Law, count: int, round_seed: int, counts: dict[str, int]) -> None:
    """Run ``count`` examples of one law; raise `Failure` with the minimal failing example."""
    failing: list[tuple[object, ...]] = []

    @seed(round_seed)
    @settings(
        max_examples=count,
        database=None,  # write nothing, wherever this is run from
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(LAW_CASES[name])
    def check(case: tuple[object, ...]) -> None:
        counts[name] += 1
        try:
            law(*case)
        except Exception:
            failing.append(case)  # the last one recorded is the shrunk one, replayed last
            raise

    try:
        check()
    except Exception as e:
        if not failing:
            raise
        raise Failure(report(name, law, failing[-1], e, round_seed)) from e


def report(
    name: str, law: Law, case: tuple[object, ...], error: Exception, round_seed: int
) -> dict[str, Any]:
    params = list(inspect.signature(law).parameters)
    return {
        "law": name,
        "seed": round_seed,
        "error": f"{type(error).__name__}: {error}",
        "case": dict(zip(params, msgspec.to_builtins(list(case)), strict=True)),
    }


def fuzz(
    laws: Mapping[str, Law],
    seconds: float | None,
    count: int | None,
    base_seed: int,
    out: Callable[[str], None] = print,
) -> int:
    """Run the laws; returns the exit status (0 clean, 1 a law failed)."""
    if seconds is None and count is None:
        seconds = 10.0
    deadline = None if seconds is None else time.monotonic() + seconds
    counts = dict.fromkeys(laws, 0)
    rounds = 0
    status = 0
    try:
        while True:
            for index, (name, law) in enumerate(laws.items()):
                left = BATCH if count is None else min(BATCH, count - counts[name])
                if left > 0:
                    run_batch(name, law, left, base_seed * 1_000_003 + rounds * len(laws) + index, counts)
            rounds += 1
            done_counting = count is not None and all(n >= count for n in counts.values())
            if done_counting or (deadline is not None and time.monotonic() >= deadline):
                break
    except Failure as failure:
        out(json.dumps(failure.report, ensure_ascii=False))
        status = 1
    for name, n in counts.items():
        out(f"{name:<20} {n:>8} examples")
    out("FAILED" if status else f"all {len(laws)} laws hold (seed {base_seed})")
    return status


def main(argv: Sequence[str] | None = None, laws: Mapping[str, Law] = LAWS) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="stop after this long (default 10 without --count)")
    parser.add_argument("--count", type=int, help="stop after this many examples per law")
    parser.add_argument("--seed", type=int, default=0, help="the seed; the same seed replays the same run")
    parser.add_argument("--law", action="append", choices=sorted(laws), help="run only this law (repeatable)")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    chosen = {name: laws[name] for name in args.law} if args.law else dict(laws)
    return fuzz(chosen, args.seconds, args.count, args.seed)


if __name__ == "__main__":
    sys.exit(main())
