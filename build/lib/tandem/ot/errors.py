"""The one small exception hierarchy of the OT library."""

from __future__ import annotations


class OTError(Exception):
    """Base of every error raised by `ot`."""


class InvalidOperation(OTError):
    """An operation is malformed, or does not fit the document it is applied to."""


class ProtocolViolation(OTError):
    """A message arrived that the client state machine cannot accept in its current state."""


class InvalidCursor(OTError):
    """A cursor points outside the text it is set in."""
