"""Hypothesis strategies for documents and operations.

Documents mix ASCII, newlines, combining marks, CJK and astral characters (emoji), so
every law is checked on code points that are not UTF-16 units and on the empty text.
The op strategies draw ops that fit a given document, built from raw component lists
that need not be canonical (so `normalize` is exercised too).
"""

from __future__ import annotations

from hypothesis import strategies as st

from tandem.ot import Component, Delete, Insert, Operation, Retain, apply, normalize

# Chosen so that ties and merges are frequent: few letters, plus the awkward ones.
ALPHABET = st.sampled_from(
    [
        "a",
        "b",
        "c",
        " ",
        "\n",
        "\u0301",  # combining acute accent
        "é",
        "中",
        "😀",
        "\U0001f44d",  # thumbs up, and a skin tone modifier that combines with it
        "\U0001f3fd",
        "\U00010348",  # Gothic hwair, astral and not an emoji
    ]
)

contents = st.text(ALPHABET, min_size=1, max_size=6)
documents = st.text(ALPHABET, max_size=24)


@st.composite
def raw_components(draw: st.DrawFn, doc_length: int) -> list[Component]:
    """A component list, not necessarily canonical, that fits a document of ``doc_length``."""
    parts: list[Component] = []
    pos = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["retain", "insert", "delete"]))
        if kind == "insert":
            parts.append(Insert(draw(contents)))
        elif pos < doc_length:
            n = draw(st.integers(1, doc_length - pos))
            parts.append(Retain(n) if kind == "retain" else Delete(n))
            pos += n
    if draw(st.booleans()) and pos < doc_length:
        parts.append(Retain(doc_length - pos))  # a trailing retain, as some clients send
    return parts


def ops(doc_length: int) -> st.SearchStrategy[Operation]:
    """Canonical ops that fit a document of ``doc_length``."""
    return raw_components(doc_length).map(normalize)


@st.composite
def doc_and_op(draw: st.DrawFn) -> tuple[str, Operation]:
    doc = draw(documents)
    return doc, draw(ops(len(doc)))


@st.composite
def doc_and_concurrent_ops(draw: st.DrawFn) -> tuple[str, Operation, Operation]:
    """A document and two ops made on it concurrently."""
    doc = draw(documents)
    return doc, draw(ops(len(doc))), draw(ops(len(doc)))


@st.composite
def doc_and_sequence(draw: st.DrawFn, count: int) -> tuple[str, list[Operation]]:
    """A document and ``count`` ops, each made on the result of the one before."""
    doc = draw(documents)
    text = doc
    sequence = []
    for _ in range(count):
        op = draw(ops(len(text)))
        sequence.append(op)
        text = apply(text, op)
    return doc, sequence


@st.composite
def transform_compose_case(draw: st.DrawFn) -> tuple[str, Operation, Operation, Operation]:
    """A document, an op ``a`` on it, and ops ``b1``, ``b2`` made one after the other on it."""
    doc, (b1, b2) = draw(doc_and_sequence(2))
    return doc, draw(ops(len(doc))), b1, b2


@st.composite
def doc_and_raw(draw: st.DrawFn) -> tuple[str, list[Component]]:
    doc = draw(documents)
    return doc, draw(raw_components(len(doc)))


# The examples of each law in ot.laws.LAWS, as argument tuples.
LAW_CASES: dict[str, st.SearchStrategy[tuple[object, ...]]] = {
    "compose": doc_and_sequence(2).map(lambda c: (c[0], *c[1])),
    "associativity": doc_and_sequence(3).map(lambda c: (c[0], *c[1])),
    "tp1": doc_and_concurrent_ops(),
    "transform_compose": transform_compose_case(),
    "invert": doc_and_op(),
    "cursor": doc_and_op(),
    "normalize": doc_and_raw(),
    "canonical": doc_and_concurrent_ops(),
}
