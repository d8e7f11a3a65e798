"""server/auth.py: tokens, roles, document patterns and allowed origins."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.server.auth import (
    LEEWAY_SECONDS,
    AuthError,
    Role,
    authorize,
    doc_matches,
    issue_token,
    origin_allowed,
    token_main,
)

SECRET = "a-secret-of-at-least-thirty-two-bytes-for-hs256"
NOW = 1_800_000_000.0
doc_ids = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=20)


def test_open_server_grants_write_without_token() -> None:
    assert authorize(None, "any", None) is Role.WRITE
    assert authorize(None, "any", "garbage") is Role.WRITE


@pytest.mark.parametrize("role", [Role.READ, Role.WRITE])
def test_issued_token_grants_its_role(role: Role) -> None:
    token = issue_token(SECRET, "notes", role, 60, now=NOW)
    assert authorize(SECRET, "notes", token, now=NOW + 30) is role


def test_token_from_any_jwt_library_is_accepted() -> None:
    token = jwt.encode({"doc": "team.*", "role": "read", "exp": int(NOW) + 10}, SECRET, algorithm="HS256")
    assert authorize(SECRET, "team.plan", token, now=NOW) is Role.READ


def test_missing_token_is_refused() -> None:
    for token in (None, ""):
        with pytest.raises(AuthError, match="token is required"):
            authorize(SECRET, "notes", token, now=NOW)


def test_expired_token_is_refused() -> None:
    token = issue_token(SECRET, "notes", Role.WRITE, 60, now=NOW)
    with pytest.raises(AuthError, match="expired"):
        authorize(SECRET, "notes", token, now=NOW + 60 + LEEWAY_SECONDS + 1)


def test_token_without_exp_is_refused() -> None:
    token = jwt.encode({"doc": "notes", "role": "write"}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="'exp'"):
        authorize(SECRET, "notes", token, now=NOW)


def test_forged_token_is_refused() -> None:
    token = issue_token("another-secret-of-thirty-two-bytes-or-more", "notes", Role.WRITE, 60, now=NOW)
    with pytest.raises(AuthError, match="signature"):
        authorize(SECRET, "notes", token, now=NOW)


def test_tampered_claims_are_refused() -> None:
    header, _, signature = issue_token(SECRET, "notes", Role.READ, 60, now=NOW).split(".")
    other = issue_token(SECRET, "notes", Role.WRITE, 60, now=NOW).split(".")[1]
    with pytest.raises(AuthError, match="signature"):
        authorize(SECRET, "notes", f"{header}.{other}.{signature}", now=NOW)


def test_unsigned_token_is_refused() -> None:
    token = jwt.encode({"doc": "notes", "role": "write", "exp": int(NOW) + 60}, None, algorithm="none")
    with pytest.raises(AuthError):
        authorize(SECRET, "notes", token, now=NOW)


def test_other_algorithm_is_refused() -> None:
    token = jwt.encode({"doc": "notes", "role": "write", "exp": int(NOW) + 60}, SECRET * 2, algorithm="HS512")
    with pytest.raises(AuthError, match="HS256"):
        authorize(SECRET, "notes", token, now=NOW)


@pytest.mark.parametrize("garbage", ["x", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9..", "\udcff"])
def test_malformed_token_is_refused(garbage: str) -> None:
    with pytest.raises(AuthError):
        authorize(SECRET, "notes", garbage, now=NOW)


def test_token_for_another_document_is_refused() -> None:
    token = issue_token(SECRET, "notes", Role.WRITE, 60, now=NOW)
    with pytest.raises(AuthError, match="not document 'notes2'"):
        authorize(SECRET, "notes2", token, now=NOW)


@pytest.mark.parametrize(
    "claims, message",
    [
        ({"role": "write"}, "'doc'"),
        ({"doc": 7, "role": "write"}, "'doc'"),
        ({"doc": "notes", "role": "admin"}, "role"),
        ({"doc": "notes"}, "role"),
        ({"doc": "notes", "role": "write", "exp": "tomorrow"}, "not a valid JWT|'exp'"),
    ],
)
def test_bad_claims_are_refused(claims: dict[str, object], message: str) -> None:
    token = jwt.encode({"exp": int(NOW) + 60, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match=message):
        authorize(SECRET, "notes", token, now=NOW)


@given(doc_ids, doc_ids)
def test_prefix_pattern_covers_exactly_the_documents_it_starts(prefix: str, rest: str) -> None:
    assert doc_matches(prefix + "*", prefix + rest)
    assert doc_matches("*", rest)
    assert doc_matches(prefix, prefix)
    assert doc_matches(prefix, rest) == (prefix == rest)
    assert not doc_matches(prefix + "*", rest) or rest.startswith(prefix)


def test_issue_token_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="secret"):
        issue_token("", "notes", Role.WRITE, 60)
    with pytest.raises(ValueError, match="ttl"):
        issue_token(SECRET, "notes", Role.WRITE, 0)
    with pytest.raises(ValueError):
        issue_token(SECRET, "notes", "owner", 60)


def test_origin_allowed() -> None:
    allowed = ("https://app.example.com", "http://127.0.0.1:8000/")
    assert origin_allowed((), "https://evil.example")
    assert origin_allowed(("*",), "https://evil.example")
    assert origin_allowed(allowed, "https://app.example.com")
    assert origin_allowed(allowed, "HTTPS://APP.EXAMPLE.COM")
    assert origin_allowed(allowed, "http://127.0.0.1:8000")
    assert not origin_allowed(allowed, "https://evil.example")
    assert not origin_allowed(allowed, "https://app.example.com.evil.example")
    assert not origin_allowed(allowed, "http://127.0.0.1:8001")
    assert not origin_allowed(allowed, "null")
    # Clients that are not browsers send no Origin; their token guards them.
    assert origin_allowed(allowed, None)


def test_token_command_prints_a_valid_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TANDEM_SECRET", SECRET)
    assert token_main(["team.*", "--role", "read", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    assert authorize(SECRET, "team.x", token) is Role.READ


def test_token_command_without_secret_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TANDEM_SECRET", raising=False)
    assert token_main(["notes"]) == 2
    assert "TANDEM_SECRET" in capsys.readouterr().err
