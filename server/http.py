"""The HTTP side: document text, op ranges, submit without a socket, verify, health, metrics."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from tandem.ot.errors import InvalidOperation
from tandem.ot.integrity import next_hash
from tandem.ot.operation import Operation, apply, span
from tandem.ot.protocol import Ack, Error, ErrorCode, Id, Rev, Seq
from tandem.server.auth import Access, AuthError, AuthRequest, Gate, Role, not_your_client, token_of
from tandem.server.hub import Hub
from tandem.server.ids import bad_doc_id, valid_doc_id
from tandem.server.limits import KeyedLimiter, retry_after
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import PAGE_BYTES, HistoryGone, OpStore, encode
from tandem.server.submit import Refusal, Submission, validate

log = logging.getLogger("tandem.http")

OPS_PAGE = 1000
VERIFY_PAGE = 2000
# Components hashed and applied between two turns of the event loop (~10 ms of CPU).
VERIFY_SLICE = 20_000

STATUS = {
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.BAD_OP: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.REV_AHEAD: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.READ_ONLY: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class HttpSubmit(msgspec.Struct, frozen=True):
    client: Id
    seq: Seq
    base: Rev
    ops: Operation


class DocText(msgspec.Struct, frozen=True):
    doc: str
    rev: int
    text: str
    hash: str


class Verification(msgspec.Struct, frozen=True):
    doc: str
    rev: int
    ok: bool
    first_bad: int | None
    verified_from: int
    message: str


_submit_decoder = msgspec.json.Decoder(HttpSubmit)


def json_response(message: object, status: int = 200) -> Response:
    return Response(encode(message), status_code=status, media_type="application/json")


def error_response(code: ErrorCode, message: str, seq: int | None = None) -> Response:
    return json_response(Error(code=code, message=message, seq=seq), STATUS[code])


class HttpError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.response = error_response(code, message)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _gate(request: Request) -> Gate:
    """The app's authorizer (server/embed.py puts it there); else the settings' JWT or open mode."""
    gate: Gate | None = getattr(request.app.state, "gate", None)
    return gate if gate is not None else Gate.of(_settings(request).secret)


async def _authorize(request: Request, doc: str, need: Role) -> None:
    await _grant(request, doc, need)


async def _grant(request: Request, doc: str, need: Role) -> Access:
    if not valid_doc_id(doc):
        raise HttpError(ErrorCode.BAD_MESSAGE, bad_doc_id(doc))
    try:
        granted = await _gate(request).check(AuthRequest(request, doc, token_of(request)))
    except AuthError as e:
        raise HttpError(ErrorCode.UNAUTHORIZED, str(e)) from None
    except Exception:
        log.exception("the authorize hook failed on %r", doc)
        raise HttpError(ErrorCode.INTERNAL, "access could not be checked") from None
    if need is Role.WRITE and granted.role is not Role.WRITE:
        raise HttpError(ErrorCode.READ_ONLY, f"your token grants read access to {doc!r}")
    return granted


def _post_limiter(request: Request) -> KeyedLimiter:
    """One limiter per app, made on first use from the settings."""
    state = request.app.state
    limiter: KeyedLimiter | None = getattr(state, "post_limiter", None)
    if limiter is None:
        settings = _settings(request)
        limiter = KeyedLimiter(settings.http_ops_per_second or settings.ops_per_second)
        state.post_limiter = limiter
    return limiter


def _rate_limited(request: Request, granted: Access) -> Response | None:
    """429 with Retry-After when this caller (its token's subject, or else its address) is over
    the limit. Without a secret the address is the only name a caller has; behind a proxy it is
    the proxy's, so all callers through it share one bucket."""
    if granted.subject is not None:
        key = "sub:" + granted.subject
    else:
        key = "addr:" + (request.client.host if request.client is not None else "")
    limiter = _post_limiter(request)
    wait = limiter.take(key)
    if wait == 0:
        return None
    response = error_response(
        ErrorCode.RATE_LIMITED, f"more than {limiter.rate:g} HTTP op submits per second; retry later"
    )
    response.headers["Retry-After"] = retry_after(wait)
    return response


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(ErrorCode.BAD_MESSAGE, f"{name} must be an integer, got {raw[:40]!r}") from None
    if value < 0:
        raise HttpError(ErrorCode.BAD_MESSAGE, f"{name} must be 0 or more, got {value}")
    return value


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """Any HTTP request that finds the op log unreachable: 503, as /healthz says, never a bare 500."""
    return error_response(ErrorCode.UNAVAILABLE, f"the op log is unavailable: {type(exc).__name__}")


async def get_doc(request: Request) -> Response:
    doc = request.path_params["doc"]
    try:
        await _authorize(request, doc, Role.READ)
        store = _hub(request).store
        head = await store.head(doc)
        rev = _int_param(request, "rev", head.rev)
        assert rev is not None
        if rev > head.rev:
            raise HttpError(ErrorCode.REV_AHEAD, f"revision {rev} is past the head {head.rev} of {doc!r}")
        held = _hub(request).held(doc)
        if held is not None and held.rev == rev:  # open here: the text is in memory, nothing to rebuild
            return json_response(DocText(doc=doc, rev=held.rev, text=held.text, hash=held.hash))
        snap = await store.text_at(doc, rev)
    except HttpError as e:
        return e.response
    except HistoryGone as e:
        return error_response(ErrorCode.NOT_FOUND, str(e))
    return json_response(DocText(doc=doc, rev=snap.rev, text=snap.text, hash=snap.hash))


async def get_ops(request: Request) -> Response:
    doc = request.path_params["doc"]
    try:
        await _authorize(request, doc, Role.READ)
        store = _hub(request).store
        head = await store.head(doc)
        first = max(1, _int_param(request, "from", 1) or 1)
        wanted = min(_int_param(request, "to", head.rev) or 0, head.rev)
        if first > head.rev + 1:  # head + 1: nothing new yet, an empty page (a tail poll)
            raise HttpError(ErrorCode.REV_AHEAD, f"from {first} is past the head {head.rev} of {doc!r}")
    except HttpError as e:
        return e.response
    max_bytes = min(PAGE_BYTES, _settings(request).answer_max_bytes)
    ops = await store.ops(doc, first, min(wanted, first + OPS_PAGE - 1), max_bytes=max_bytes)
    if first <= wanted and (not ops or ops[0].op.rev != first):
        return error_response(ErrorCode.NOT_FOUND, f"the log of {doc!r} no longer holds revision {first}")
    last = ops[-1].op.rev if ops else wanted
    next_from = last + 1 if last < wanted else None
    body = b'{"doc":' + encode(doc) + b',"head":' + str(head.rev).encode() + b',"ops":['
    body += b",".join(s.frame for s in ops) + b'],"next":' + encode(next_from) + b"}"
    return Response(body, media_type="application/json")


async def post_op(request: Request) -> Response:
    doc = request.path_params["doc"]
    settings = _settings(request)
    try:
        granted = await _grant(request, doc, Role.WRITE)
    except HttpError as e:
        return e.response
    if (limited := _rate_limited(request, granted)) is not None:
        return limited
    # Read no more than the limit: a huge body must not be held in memory to be refused.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_frame_bytes:
            return error_response(ErrorCode.TOO_LARGE, f"body of more than {settings.max_frame_bytes} bytes")
    try:
        message = _submit_decoder.decode(body)
    except msgspec.DecodeError as e:
        return error_response(ErrorCode.BAD_MESSAGE, f"not a valid submit: {e}")
    except RecursionError:  # readable JSON, nested deeper than the decoder's stack
        return error_response(ErrorCode.BAD_MESSAGE, "not a valid submit: nested too deeply")
    try:
        ops = validate(message.ops, settings.max_components)
    except Refusal as r:
        return error_response(r.code, r.message, message.seq)
    hub = _hub(request)
    if _gate(request).binds(granted):
        owner = await hub.store.claim_client(doc, message.client, granted.subject)
        if owner != granted.subject:
            return error_response(ErrorCode.UNAUTHORIZED, not_your_client(doc, message.client), message.seq)
    try:
        document = await hub.acquire(doc)
    except Exception as e:
        log.warning("cannot open %r", doc, exc_info=True)
        return error_response(ErrorCode.UNAVAILABLE, f"cannot open the document: {type(e).__name__}")
    try:
        submission = Submission(message.client, message.seq, message.base, ops, reach=span(message.ops))
        document.put(submission)
        result = await asyncio.shield(submission.result)
    except asyncio.CancelledError:
        # Only a server shutting down cancels a request here (after its grace period): answer
        # instead of dropping the connection. The op may have been committed; a resubmit is safe.
        return error_response(
            ErrorCode.UNAVAILABLE,
            "the server is shutting down; resubmit (an op already committed is acknowledged)",
            message.seq,
        )
    finally:
        hub.release(document)
    if isinstance(result, Ack):
        return json_response(result)
    return json_response(result, STATUS[result.code])


async def verify(request: Request) -> Response:
    """Recompute the integrity chain over the stored log, from genesis or the oldest snapshot kept,
    and apply every op to the text: an op that does not fit the text before it is reported too."""
    doc = request.path_params["doc"]
    try:
        await _authorize(request, doc, Role.READ)
    except HttpError as e:
        return e.response
    return json_response(await _verification(_hub(request).store, doc))


async def _verification(store: OpStore, doc: str) -> Verification:
    head = await store.head(doc)
    first = await store.first_logged_rev(doc) or head.rev + 1
    start = await store.snapshot_at_or_before(doc, first - 1)
    if start.rev != first - 1:
        return Verification(
            doc,
            head.rev,
            False,
            first,
            first,
            f"revisions {start.rev + 1}..{first - 1} are gone from the log",
        )

    def bad(first_bad: int, message: str) -> Verification:
        return Verification(doc, head.rev, False, first_bad, start.rev, message)

    prev, rev, text = start.hash, start.rev, start.text
    since_yield = 0
    while rev < head.rev:
        page = await store.ops(doc, rev + 1, min(head.rev, rev + VERIFY_PAGE), max_bytes=PAGE_BYTES)
        if not page:
            return bad(rev + 1, f"revision {rev + 1} is missing from the log")
        for stored in page:
            op = stored.op
            rev += 1
            since_yield += len(op.ops)
            if since_yield >= VERIFY_SLICE:  # a long verification never stalls the other requests
                since_yield = 0
                await asyncio.sleep(0)
            if op.rev != rev:
                return bad(rev, f"revision {rev} is missing; found {op.rev}")
            prev = next_hash(prev, op.rev, op.client, op.seq, op.ops)
            if prev != op.hash:
                return bad(rev, f"revision {rev}: stored hash does not match its record")
            try:
                text = apply(text, op.ops)
            except InvalidOperation as e:
                return bad(rev, f"revision {rev} does not fit the text before it: {e}")
    if prev != head.hash:
        return bad(head.rev, "the head hash does not match the last record")
    return Verification(doc, head.rev, True, None, start.rev, "chain intact")


async def healthz(request: Request) -> Response:
    """Readiness: 200 while this process can take clients; 503 while it cannot reach Redis or
    drains on shutdown (a load balancer should send it no one new)."""
    draining = bool(getattr(request.app.state, "draining", False))
    redis = await _ping(request)
    status = "draining" if draining else "ok" if redis else "redis_unreachable"
    body = {"status": status, "redis": redis, "draining": draining}
    code = 200 if status == "ok" else 503
    return Response(msgspec.json.encode(body), status_code=code, media_type="application/json")


async def livez(request: Request) -> Response:
    """Liveness: the event loop answers. No Redis call: a Redis outage is no reason to restart."""
    return Response(b'{"status":"ok"}', media_type="application/json")


async def metrics(request: Request) -> Response:
    m: Metrics = request.app.state.metrics
    m.set("tandem_redis_up", 1.0 if await _ping(request) else 0.0)
    return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")


async def _ping(request: Request) -> bool:
    hub: Hub | None = getattr(request.app.state, "hub", None)  # None: an embedded Tandem not started
    return hub is not None and await hub.store.ping()


PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>Tandem</title>
<h1>Tandem</h1>
<p>This server speaks the Tandem protocol (docs/protocol.md).</p>
<ul>
<li>WebSocket: <code>ws://HOST/ws/{doc}</code>, first message
<code>{"type":"hello","client":"my-editor-1"}</code></li>
<li>Python: <code>python scripts/bot.py --url ws://HOST/ws/demo</code></li>
<li>HTTP: <code>GET /docs/{doc}</code>, <code>GET /docs/{doc}/ops</code>,
<code>POST /docs/{doc}/ops</code></li>
</ul>
"""


def homepage_for(web_dir: Path | None) -> object:
    async def homepage(request: Request) -> Response:
        if web_dir is not None and (web_dir / "index.html").is_file():
            return FileResponse(web_dir / "index.html")
        return HTMLResponse(PLACEHOLDER)

    return homepage
