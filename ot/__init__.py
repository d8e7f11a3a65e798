"""Tandem's operational-transform core: pure functions and a sans-IO client state machine.

No IO, no asyncio, no Redis: the standard library and msgspec only.
"""

from ot.cursor import Cursor, transform_cursor, transform_index
from ot.errors import InvalidOperation, OTError, ProtocolViolation
from ot.operation import (
    IDENTITY,
    Component,
    Delete,
    Insert,
    Operation,
    Retain,
    apply,
    check,
    compose,
    delete_op,
    insert_op,
    invert,
    length_delta,
    normalize,
    rebase,
    span,
    transform,
)

__all__ = [
    "IDENTITY",
    "Component",
    "Cursor",
    "Delete",
    "Insert",
    "InvalidOperation",
    "OTError",
    "Operation",
    "ProtocolViolation",
    "Retain",
    "apply",
    "check",
    "compose",
    "delete_op",
    "insert_op",
    "invert",
    "length_delta",
    "normalize",
    "rebase",
    "span",
    "transform",
    "transform_cursor",
    "transform_index",
]
