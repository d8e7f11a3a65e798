"""The laws of the operation algebra, one @given each (the checks live in ot.laws)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.ot import (
    Component,
    Delete,
    Insert,
    InvalidOperation,
    Operation,
    Retain,
    apply,
    check,
    compose,
    laws,
    transform,
)
from tandem.ot.algebra import _transform_walk
from tandem.testing.strategies import (
    LAW_CASES,
    doc_and_concurrent_ops,
    doc_and_op,
    doc_and_raw,
    doc_and_sequence,
    documents,
    raw_components,
    transform_compose_case,
)


@given(doc_and_sequence(2))
def test_compose_then_apply_equals_apply_twice(case: tuple[str, list[Operation]]) -> None:
    s, (a, b) = case
    laws.compose_applies(s, a, b)


@given(doc_and_sequence(3))
def test_compose_is_associative(case: tuple[str, list[Operation]]) -> None:
    s, (a, b, c) = case
    laws.compose_associative(s, a, b, c)


@given(doc_and_concurrent_ops())
def test_transform_converges_tp1(case: tuple[str, Operation, Operation]) -> None:
    laws.transform_converges(*case)


@given(transform_compose_case())
def test_transform_through_compose_equals_transform_in_steps(
    case: tuple[str, Operation, Operation, Operation],
) -> None:
    laws.transform_respects_compose(*case)


@given(doc_and_op())
def test_invert_undoes(case: tuple[str, Operation]) -> None:
    laws.invert_undoes(*case)


@given(doc_and_op())
def test_cursor_transform_agrees_with_apply(case: tuple[str, Operation]) -> None:
    laws.cursor_follows_text(*case)


@given(doc_and_raw())
def test_normalize_is_idempotent_and_keeps_the_effect(case: tuple[str, list[object]]) -> None:
    laws.normalize_is_canonical(*case)  # type: ignore[arg-type]


@given(doc_and_concurrent_ops())
def test_results_are_canonical(case: tuple[str, Operation, Operation]) -> None:
    laws.results_are_canonical(*case)


def test_every_law_has_examples() -> None:
    assert set(LAW_CASES) == set(laws.LAWS)


def test_a_broken_law_is_reported_by_name() -> None:
    with pytest.raises(laws.LawViolation, match="^invert: undoing gives"):
        laws._expect(False, "invert", "undoing gives 'x', not 'y'")


@given(documents, st.integers(-3, 0), st.sampled_from([Retain, Delete]))
def test_check_names_a_non_positive_length(doc: str, n: int, kind: type[Retain] | type[Delete]) -> None:
    with pytest.raises(
        InvalidOperation, match=rf"component 0: {kind.__name__} length must be a positive integer, got {n}"
    ):
        check([kind(n)], len(doc))  # built without msgspec's validation, as Python code may


def test_check_names_an_empty_insert() -> None:
    with pytest.raises(InvalidOperation, match="component 1: Insert content must be a non-empty string"):
        check([Retain(1), Insert("")], 3)


@given(st.sampled_from(["\ud800", "a\udfff", "\udbff😀"]))
def test_check_names_a_lone_surrogate(content: str) -> None:
    with pytest.raises(InvalidOperation, match="component 0: Insert content holds a lone surrogate"):
        check([Insert(content)], 0)


@given(documents, st.integers(1, 5))
def test_check_and_apply_name_an_op_reaching_past_the_end(doc: str, extra: int) -> None:
    too_long = (Retain(len(doc) + extra),) if doc else (Delete(extra),)
    spans = len(doc) + extra if doc else extra
    message = f"op spans {spans} code points but the document has {len(doc)}"
    with pytest.raises(InvalidOperation, match=message):
        check(too_long, len(doc))
    with pytest.raises(InvalidOperation, match=message):
        apply(doc, too_long)


def test_check_names_a_foreign_component() -> None:
    with pytest.raises(InvalidOperation, match="component 0: expected Retain, Insert or Delete, got 3"):
        check([3], 0)  # type: ignore[list-item]


def test_composing_history_first_reorders_inserts_next_to_deleted_text() -> None:
    """Why rebase goes one op at a time: the documented limit of the composition law."""
    a, b1, b2 = (Retain(1), Insert("A")), (Delete(1),), (Insert("B"),)
    at_once, _ = transform(a, compose(b1, b2))
    step, _ = transform(a, b1)
    in_steps, _ = transform(step, b2)
    after_b = apply(apply("xyz", b1), b2)
    assert (apply(after_b, at_once), apply(after_b, in_steps)) == ("BAyz", "AByz")
    laws.transform_respects_compose("xyz", a, b1, b2)  # within what the law promises


@given(
    doc_and_concurrent_ops(),
    documents.flatmap(lambda d: st.tuples(raw_components(len(d)), raw_components(len(d)))),
)
def test_transform_segment_path_equals_the_walk(
    case: tuple[str, Operation, Operation], raw: tuple[list[Component], list[Component]]
) -> None:
    """transform's fast path for edits apart gives exactly what the general walk gives."""
    _, a, b = case
    assert transform(a, b) == _transform_walk(a, b)
    a_raw, b_raw = tuple(raw[0]), tuple(raw[1])  # not canonical: the fast path must bail out
    assert transform(a_raw, b_raw) == _transform_walk(a_raw, b_raw)
