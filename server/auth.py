"""Access control: who may read or write which document, and from which browser origin.

A token is a standard JWT signed with HS256, so any auth server or JWT library can issue it:

    {"doc": "notes.42", "role": "write", "sub": "user-17", "exp": 1767225600}

`doc` names one document, a prefix of document ids ending in `*` ("team-7.*"), or `*` for all.
`role` is `read` (receive ops and presence, never commit) or `write`. `sub` names the holder,
required for `write`: a client id belongs to the subject that first used it on a document, so
one holder cannot act as another's client (its exactly-once record, its cursor). `exp` is
required: a token that never expires cannot be taken back, and an open connection ends when it
passes. Without a secret the server is open: every client may write, as any client id.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

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
