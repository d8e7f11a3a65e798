"""The effects a `ot.client.ClientSession` returns: what its caller must do, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from tandem.ot.cursor import Cursor
from tandem.ot.operation import Operation
from tandem.ot.protocol import ClientMessage, ErrorCode, User


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` on the current connection."""

    message: ClientMessage


@dataclass(frozen=True, slots=True)
class TextChanged:
    """The local text changed by ``op``; an editor shows it when ``remote`` (it made local edits itself)."""

    op: Operation
    remote: bool = True


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """Local edit ``seq`` was committed as revision ``rev``."""

    seq: int
    rev: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Local edits that will never be committed (each op as it was when dropped), and why."""

    ops: tuple[Operation, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Close the connection and call `ClientSession.connect` on a new one (a reload follows)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Diverged:
    """The history received does not match the replica (a hash or an op did not fit): reloading."""

    rev: int
    detail: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """The server answered ``error``; ``retryable`` ones may be resent with `ClientSession.resubmit`."""

    code: ErrorCode
    message: str
    seq: int | None
    retryable: bool


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """Another client's cursor moved, or left (``cursor`` None)."""

    client: str
    cursor: Cursor | None
    user: User | None


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The replay after hello is done: the session is live at ``rev``."""

    rev: int


Effect: TypeAlias = (
    Send | TextChanged | Acknowledged | Lost | Reconnect | Diverged | ServerError | PresenceChanged | CaughtUp
)
