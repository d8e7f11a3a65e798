"""The HTTP webhook: change events POSTed as signed JSON to another service.

One POST carries the events of one document in revision order (`WebhookBody`). Headers:

- ``X-Tandem-Timestamp``: seconds since the epoch when the request was signed;
- ``X-Tandem-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>." + body with the secret>``.

The receiver recomputes the signature (`verify` does it in Python) and refuses an old
timestamp, so a recorded request cannot be replayed later. A 2xx answer acknowledges every
event of the body; anything else, or no answer within the timeout, has it sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ssl
import time
import urllib.parse

import msgspec

from tandem.server.hooks import ChangeEvent, Hook

SIGNATURE_HEADER = "X-Tandem-Signature"
TIMESTAMP_HEADER = "X-Tandem-Timestamp"

# An answer's status line and headers; the body is never read.
_MAX_ANSWER_HEAD = 64 * 1024

_encode = msgspec.json.Encoder().encode


class WebhookBody(msgspec.Struct, frozen=True):
    hook: str
    doc: str
    events: list[ChangeEvent]


webhook_body_decoder = msgspec.json.Decoder(WebhookBody)


class WebhookFailed(Exception):
    """The receiver did not acknowledge a delivery: it is retried."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``, within ``tolerance``
    seconds of ``now``: what a receiver checks before trusting a delivery."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook(name: str, url: str, secret: str, *, timeout: float = 10.0) -> Hook:
    """A hook POSTing each batch to ``url``, acknowledged by a 2xx answer within ``timeout``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL is http:// or https:// with a host, got {url!r}")
    if not secret:
        raise ValueError("a webhook needs a secret to sign its deliveries")

    async def deliver(events: list[ChangeEvent]) -> None:
        body = _encode(WebhookBody(hook=name, doc=events[0].doc, events=events))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        status = await post(url, body, headers, timeout=timeout)
        if not 200 <= status < 300:
            raise WebhookFailed(f"{url} answered {status}")

    # the runner's own deadline: past the request's, so the request's timeout is what fires
    return Hook(name, deliver, timeout=timeout + 1.0)


async def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST ``body`` and return the answer's status, all within ``timeout`` seconds.

    A small HTTP/1.1 client of its own (one connection per request, ``Connection: close``):
    the runtime needs nothing but the status code, and the whole exchange stays cancellable.
    """
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {netloc}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if https else None, limit=_MAX_ANSWER_HEAD
            )
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
    fields = status_line.split(maxsplit=2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit():
        raise WebhookFailed(f"{url} gave no HTTP answer ({status_line[:80]!r})")
    return int(fields[1])
