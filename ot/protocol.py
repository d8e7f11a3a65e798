"""Wire messages of protocol version 1 (docs/protocol.md): one tagged union per direction.

Pure data, as h11 keeps its events: every message is a frozen msgspec Struct tagged by
"type"; the typed decoders are built once and reject anything that is not one of them
with an error naming the field. Client-to-server `SubmitOp` and server-to-client
`CommittedOp` share the tag "op" but live in different unions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeAlias

import msgspec

from tandem.ot.cursor import Cursor
from tandem.ot.operation import MAX_LENGTH, Operation

PROTOCOL_VERSION = 1

# \Z, not $: $ also matches before a final newline, and "a\n" is no id.
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}\Z")]
DocId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,128}\Z")]
Rev = Annotated[int, msgspec.Meta(ge=0, le=MAX_LENGTH)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=MAX_LENGTH)]
HexHash = str


class ErrorCode(StrEnum):
    """The codes of `error` messages, shared by the server, the clients and the docs."""

    BAD_MESSAGE = "bad_message"
    BAD_OP = "bad_op"
    TOO_LARGE = "too_large"
    REV_AHEAD = "rev_ahead"
    UNAUTHORIZED = "unauthorized"
    READ_ONLY = "read_only"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


# Display data reaches every other page: a name is 1-64 code points with no control, line
# separator or bidirectional override character; a colour is #rgb or #rrggbb, nothing a
# stylesheet would read as a URL. msgspec searches patterns (re.search), where `$` also
# matches before a final newline: \A...\Z anchor them for real.
UserName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"\A[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*\Z",
    ),
]
UserColor = Annotated[str, msgspec.Meta(pattern=r"\A#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})\Z")]


class User(msgspec.Struct, frozen=True, omit_defaults=True):
    """Display data of a participant; an empty field is one left out (the page shows the client id)."""

    name: UserName = ""
    color: UserColor = ""


class _ClientMessage(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=False):
    pass


class Hello(_ClientMessage, frozen=True, tag="hello"):
    client: Id
    rev: Rev | None = None
    token: str | None = None


class SubmitOp(_ClientMessage, frozen=True, tag="op"):
    seq: Seq
    base: Rev
    ops: Operation


class Fetch(_ClientMessage, frozen=True, tag="fetch", rename={"from_": "from"}):
    from_: Rev
    to: Rev | None = None


class Presence(_ClientMessage, frozen=True, tag="presence"):
    """``cursor`` in the sender's text at revision ``rev``, which it held with no op in flight.

    Without ``rev`` (older clients) the server takes the last revision it wrote to the connection.
    """

    cursor: Cursor | None
    user: User | None = None
    rev: Rev | None = None


class Ping(_ClientMessage, frozen=True, tag="ping"):
    pass


ClientMessage: TypeAlias = Hello | SubmitOp | Fetch | Presence | Ping


class _ServerMessage(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class Snapshot(_ServerMessage, frozen=True, tag="snapshot"):
    rev: int
    text: str
    hash: HexHash


class CommittedOp(_ServerMessage, frozen=True, tag="op", omit_defaults=True):
    """``time``: when the server committed it (ms since the epoch, its own clock). Not part of
    the hashed record, and absent from ops committed before servers stamped it."""

    rev: int
    client: str
    seq: int
    ops: Operation
    hash: HexHash
    time: int | None = None


class Ready(_ServerMessage, frozen=True, tag="ready"):
    rev: int


class Ack(_ServerMessage, frozen=True, tag="ack"):
    seq: int
    rev: int
    hash: HexHash


class PresenceUpdate(_ServerMessage, frozen=True, tag="presence"):
    client: str
    rev: int
    cursor: Cursor | None
    user: User | None = None


class Error(_ServerMessage, frozen=True, tag="error", omit_defaults=True):
    code: ErrorCode
    message: str
    seq: int | None = None


class Pong(_ServerMessage, frozen=True, tag="pong"):
    pass


ServerMessage: TypeAlias = Snapshot | CommittedOp | Ready | Ack | PresenceUpdate | Error | Pong

client_message_decoder = msgspec.json.Decoder(ClientMessage)
# The server may batch several messages into one frame as a JSON array.
server_frame_decoder = msgspec.json.Decoder(ServerMessage | list[ServerMessage])
encoder = msgspec.json.Encoder()


def decode_server_frame(frame: bytes | str) -> list[ServerMessage]:
    """The messages of one server frame, whether sent alone or batched in an array."""
    decoded = server_frame_decoder.decode(frame)
    return decoded if isinstance(decoded, list) else [decoded]
