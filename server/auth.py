"""Access control: who may read or write which document, and from which browser origin.

A token is a standard JWT signed with HS256, so any auth server or JWT library can issue it:

    {"doc": "notes.42", "role": "write", "sub": "user-17", "exp": 1767225600}

`doc` names one document, a prefix of document ids ending in `*` ("team-7.*"), or `*` for all.
`role` is `read` (receive ops and presence, never commit) or `write`. `sub` names the holder,
required for `write`: a client id belongs to the subject that first used it on a document, so
one holder cannot act as another's client (its exactly-once record, its cursor). `exp` is
required: a token that never expires cannot be taken back, and an open connection ends when it
passes. Without a secret the server is open: every client may write, as any client id.

The JWT mode is one `Authorizer`: an async hook given the request (headers, cookies, query, the
document id, the token) that returns an `Access` (who, which role, when to ask again) or
raises `AuthError`. A host application passes its own to `tandem.Tandem(authorize=...)`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import jwt
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection

log = logging.getLogger("tandem.auth")

ALGORITHM = "HS256"
# Clocks of the issuing service and the server are rarely in perfect step.
LEEWAY_SECONDS = 5.0
# A subject is stored with every client id it claims: keep it an id, not a document.
MAX_SUBJECT_LENGTH = 256


class Role(StrEnum):
    READ = "read"
    WRITE = "write"


class AuthError(Exception):
    """The token does not grant access; the message says why, without echoing the secret."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token grants: a role, to whom (None: an open server, or a read token without
    `sub`), until when (epoch seconds, leeway included: the moment `authorize` starts refusing
    it; None: never)."""

    role: Role
    subject: str | None = None
    expires: float | None = None


OPEN = Grant(Role.WRITE)


@dataclass(frozen=True, slots=True)
class Access:
    """What an `Authorizer` grants: who the user is (None: nobody in particular), a role, and
    when to ask again (epoch seconds; None: never). At `expires` an open WebSocket re-runs the
    hook with its original request: granted again, it carries on; refused, it is closed."""

    subject: str | None
    role: Role
    expires: float | None = None


class AuthRequest:
    """What an `Authorizer` judges: the HTTP request or WebSocket handshake (headers, cookies,
    query, client; ``connection`` for the rest, e.g. ``connection.session`` under Starlette's
    SessionMiddleware), the document id, and the token the client sent, if any (in hello, as
    ``?token=`` or as ``Authorization: Bearer``)."""

    __slots__ = ("connection", "doc", "token")

    def __init__(self, connection: HTTPConnection, doc: str, token: str | None) -> None:
        self.connection = connection
        self.doc = doc
        self.token = token

    @property
    def headers(self) -> Headers:
        return self.connection.headers

    @property
    def cookies(self) -> dict[str, str]:
        return self.connection.cookies

    @property
    def query_params(self) -> QueryParams:
        return self.connection.query_params

    @property
    def client(self) -> str | None:
        """The remote address (behind a proxy, the proxy's)."""
        return self.connection.client.host if self.connection.client is not None else None


# Returns the access granted on request.doc, or raises AuthError to refuse (its message is
# sent to the client: say why, never a secret).
Authorizer = Callable[[AuthRequest], Awaitable[Access]]


def jwt_authorizer(secret: str) -> Authorizer:
    """The JWT mode as an `Authorizer`: the token's `doc`, `role`, `sub` and `exp` (see `grant`);
    the re-check falls at `exp` plus the leeway, when the same token is refused."""
    if not secret:
        raise ValueError("jwt_authorizer needs a secret")

    async def authorize(request: AuthRequest) -> Access:
        granted = grant(secret, request.doc, request.token)
        return Access(granted.subject, granted.role, granted.expires)

    return authorize


async def open_access(request: AuthRequest) -> Access:
    """No access control: everyone writes, as nobody in particular."""
    return Access(None, Role.WRITE)


def token_of(connection: HTTPConnection) -> str | None:
    """The token of an HTTP request or handshake: ``Authorization: Bearer``, else ``?token=``."""
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return connection.query_params.get("token") or None


class Holder(Protocol):
    """An open connection that a revocation of its subject re-checks (server/session.py)."""

    doc_name: str
    subject: str | None

    async def recheck(self, revoked: bool) -> None: ...


class Gate:
    """The authorizer of one Tandem, and the open connections of each subject, for `revoke`.

    Client ids are bound to an access's subject whenever it has one. Without a subject, on an
    open server (no hook, no secret) nothing is checked: anyone may act as any client id;
    behind a hook or a secret, a connection without a subject may use only client ids that no
    subject has claimed, and claims none (another subjectless caller may use the same id).
    """

    def __init__(self, authorize: Authorizer, *, open: bool = False) -> None:
        self.authorize = authorize
        self.open = open
        self._holders: dict[str, set[Holder]] = {}

    @classmethod
    def of(cls, secret: str | None, authorize: Authorizer | None = None) -> Gate:
        if authorize is not None and secret is not None:
            # two sources of truth for who may write; compose them in the hook instead
            raise ValueError(
                "pass either an authorize hook or a secret, not both (use jwt_authorizer in the hook)"
            )
        if authorize is not None:
            return cls(authorize)
        if secret is not None:
            return cls(jwt_authorizer(secret))
        return cls(open_access, open=True)

    async def check(self, request: AuthRequest) -> Access:
        """The hook's answer, checked. Raises AuthError to refuse; any other exception is the
        hook's own failure."""
        access = await self.authorize(request)
        if not isinstance(access, Access) or not isinstance(access.role, Role):
            raise TypeError(f"the authorize hook must return an Access with a Role, got {access!r}")
        subject = access.subject
        if subject is not None and (
            not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH
        ):
            raise TypeError(
                f"an Access subject must be 1-{MAX_SUBJECT_LENGTH} characters, got {subject!r:.60}"
            )
        if access.expires is not None and access.expires <= time.time():
            raise AuthError("access expired")  # granted until a moment already past: nothing granted
        return access

    def binds(self, access: Access) -> bool:
        """Whether a client id must be checked against its owner (see the class docstring)."""
        return access.subject is not None or not self.open

    def enter(self, holder: Holder) -> None:
        if holder.subject is not None:
            self._holders.setdefault(holder.subject, set()).add(holder)

    def leave(self, holder: Holder) -> None:
        if holder.subject is not None:
            held = self._holders.get(holder.subject)
            if held is not None:
                held.discard(holder)
                if not held:
                    del self._holders[holder.subject]

    def holders(self, subject: str, doc: str | None = None) -> Iterator[Holder]:
        for holder in list(self._holders.get(subject, ())):
            if doc is None or holder.doc_name == doc:
                yield holder


def authorize(secret: str | None, doc: str, token: str | None, now: float | None = None) -> Role:
    """The role `token` grants on `doc`; WRITE for everyone when `secret` is None.

    Raises AuthError when the token is missing, malformed, forged, expired, or names another document.
    """
    return grant(secret, doc, token, now).role


def grant(secret: str | None, doc: str, token: str | None, now: float | None = None) -> Grant:
    """What `token` grants on `doc`: `OPEN` (write, no subject, no expiry) when `secret` is None.

    Raises AuthError when the token is missing, malformed, forged, expired, names another
    document, or grants write access without naming a subject.
    """
    if secret is None:
        return OPEN
    if not token:
        raise AuthError("a token is required: send it in hello or as ?token=")
    claims = _decode(secret, token, time.time() if now is None else now)
    pattern = claims.get("doc")
    if not isinstance(pattern, str) or not pattern:
        raise AuthError("token has no 'doc' claim (a document id, a prefix ending in '*', or '*')")
    if not doc_matches(pattern, doc):
        raise AuthError(f"token grants {pattern!r}, not document {doc!r}")
    role = claims.get("role")
    if role not in (Role.READ.value, Role.WRITE.value):
        raise AuthError(f"token role must be 'read' or 'write', got {role!r}")
    subject = claims.get("sub")
    # A writer must be someone: its client ids (and their exactly-once records) are bound to it.
    # A reader may be anonymous; it then claims no client id and may use none that is claimed.
    if subject is None and role == Role.READ.value:
        pass
    elif not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        shown = repr(subject)[:60]
        raise AuthError(
            f"token needs a 'sub' claim naming its holder (1-{MAX_SUBJECT_LENGTH} characters)"
            f"{' for write access' if subject is None else ''}, got {shown}"
        )
    exp = claims["exp"]
    assert isinstance(exp, int | float)  # checked by _decode
    return Grant(Role(role), subject, float(exp) + LEEWAY_SECONDS)


def _decode(secret: str, token: str, now: float) -> dict[str, object]:
    try:
        # Expiry is checked here against `now` rather than by PyJWT against the wall clock,
        # so callers (and tests) decide what time it is.
        claims: dict[str, object] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.MissingRequiredClaimError:
        raise AuthError("token has no 'exp' claim; tokens must expire") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature does not match the server's secret") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"token must be signed with {ALGORITHM}") from None
    except jwt.InvalidTokenError as e:
        raise AuthError(f"token is not a valid JWT: {e}") from None
    except (ValueError, TypeError):  # e.g. a lone surrogate that cannot be encoded
        raise AuthError("token is not a valid JWT: not ASCII text") from None
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthError(f"token 'exp' must be a number of seconds since the epoch, got {exp!r}")
    if now > exp + LEEWAY_SECONDS:
        raise AuthError(f"token expired {int(now - exp)} s ago")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now < nbf - LEEWAY_SECONDS:
        raise AuthError(f"token is not valid for another {int(nbf - now)} s (nbf)")
    return claims


def doc_matches(pattern: str, doc: str) -> bool:
    """Whether a token's `doc` claim covers `doc`: equal, `*`, or a prefix followed by `*`."""
    if pattern.endswith("*"):
        return doc.startswith(pattern[:-1])
    return pattern == doc


def not_your_client(doc: str, client: str) -> str:
    """Why a client id is refused: another token subject used it first on this document."""
    return (
        f"client id {client!r} on {doc!r} belongs to another token holder ('sub'): nothing of its "
        "record was touched; use a client id of your own"
    )


def issue_token(
    secret: str,
    doc: str,
    role: Role | str,
    ttl_seconds: float,
    now: float | None = None,
    *,
    sub: str | None = None,
) -> str:
    """A signed token granting `role` on `doc` (an id, a prefix ending in `*`, or `*`) for `ttl_seconds`.

    `sub` names the holder (a user id): the client ids it uses stay its own across fresh tokens.
    None makes up a random one, a holder of its own that no later token shares.
    """
    if not secret:
        raise ValueError("cannot issue a token without a secret (set TANDEM_SECRET)")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    if sub is None:
        sub = "anon-" + secrets.token_hex(8)
    if not sub or len(sub) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"sub must be 1-{MAX_SUBJECT_LENGTH} characters, got {len(sub)}")
    role = Role(role)
    issued = time.time() if now is None else now
    claims = {
        "doc": doc,
        "role": role.value,
        "sub": sub,
        "iat": int(issued),
        "exp": int(issued + ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def origin_allowed(allowed: tuple[str, ...], origin: str | None) -> bool:
    """Whether a WebSocket handshake from `origin` may proceed.

    An empty `allowed` admits every origin. Otherwise a browser's Origin must be listed exactly
    (scheme://host[:port], no trailing slash) or `*` must be listed. Clients that are not
    browsers send no Origin; they are admitted, since the token, not the origin, guards them.
    """
    if not allowed or "*" in allowed or origin is None:
        return True
    return origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}


def token_main(argv: list[str]) -> int:
    """`tandem token DOC [--role read|write] [--sub SUBJECT] [--ttl SECONDS]`: print a token signed
    with TANDEM_SECRET."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(
        prog="tandem token",
        description="Print a JWT (HS256) granting access to a document, signed with TANDEM_SECRET.",
    )
    parser.add_argument("doc", help="a document id, a prefix ending in '*' (e.g. 'team-7.*'), or '*'")
    parser.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.WRITE.value,
        help="read: receive ops and presence only; write: also edit (default)",
    )
    parser.add_argument(
        "--sub",
        default=None,
        help="the holder (a user id); the client ids it uses stay its own (default: a random one)",
    )
    parser.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (default 3600)")
    parser.add_argument(
        "--secret", default=None, help="the signing secret (default: the TANDEM_SECRET environment variable)"
    )
    args = parser.parse_args(argv)
    secret = args.secret or os.environ.get("TANDEM_SECRET")
    if not secret:
        print("tandem token: no secret: set TANDEM_SECRET or pass --secret", file=sys.stderr)
        return 2
    try:
        print(issue_token(secret, args.doc, args.role, args.ttl, sub=args.sub))
    except ValueError as e:
        print(f"tandem token: {e}", file=sys.stderr)
        return 2
    return 0


def access_notice(secret: str | None, allowed_origins: tuple[str, ...]) -> str:
    """One line for the start of the server saying who may edit."""
    if secret is None:
        access = (
            "access: OPEN, every client may read and write every document, as any client id"
            " (set TANDEM_SECRET)"
        )
    else:
        access = "access: tokens required (HS256 JWT signed with TANDEM_SECRET, with 'sub' and 'exp')"
    origins = ", ".join(allowed_origins) if allowed_origins else "any"
    return f"{access}; browser origins: {origins}"
