"""The accounting used by the load and fault runs must itself catch every kind of damage."""

from __future__ import annotations

from tandem.testing.audit import Ledger, audit, boundaries, token

A, B, C = token(1, 1), token(1, 2), token(2, 1)


def test_clean_run_passes() -> None:
    ledger = Ledger(inserted={A, B, C}, deleted={B}, submitted={A, B, C})
    result = audit(C + A, {"r1": C + A, "r2": C + A}, [ledger])
    assert result.ok and result.details == ()


def test_each_kind_of_damage_is_counted() -> None:
    ledger = Ledger(inserted={A, B}, deleted={C}, submitted={A, B, C})
    result = audit(A + A + C + "x" + token(9, 9), {"r1": A, "r2": A + A + C + "x" + token(9, 9)}, [ledger])
    assert (result.lost, result.duplicated, result.diverged, result.garbled) == (2, 1, 1, 2)
    assert not result.ok
    assert len(result.details) == 6


def test_boundaries_count_code_points() -> None:
    assert boundaries(A + C) == [0, len(A), len(A) + len(C)]
    assert len(A) == len(f"[1.1é{chr(0x1F600)}]") == 7
