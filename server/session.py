"""One WebSocket connection: the only place that awaits the socket.

A reader decodes each frame and dispatches it; a writer sends what this connection is owed:
its own messages (acks, errors, replies) from its outbox, then the ops committed since its
cursor, read from the document's broadcast log (server/broadcast.py), several messages in one
JSON array frame when more than one is waiting.
Bad input is answered with an `error` naming what was wrong and changes nothing; only an
unreadable frame (4400) or one over the size limit (4413) closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from tandem.ot.operation import span
from tandem.ot.protocol import (
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Ping,
    Pong,
    Presence,
    PresenceUpdate,
    SubmitOp,
    client_message_decoder,
)
from tandem.server.auth import AuthError, AuthRequest, Gate, Role, not_your_client, token_of
from tandem.server.broadcast import Broadcast
from tandem.server.document import Document, FetchRequest, Join, Leave, PresenceIn
from tandem.server.hub import Hub
from tandem.server.ids import bad_doc_id, valid_doc_id
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import text_of
from tandem.server.submit import Refusal, Submission, validate

log = logging.getLogger("tandem.session")

WS_1011_INTERNAL_ERROR = 1011
WS_1012_SERVICE_RESTART = 1012
WS_1013_TRY_AGAIN_LATER = 1013
WS_4400_UNREADABLE = 4400
WS_4408_NO_HELLO = 4408
WS_4413_TOO_LARGE = 4413
WS_4401_TOKEN_EXPIRED = 4401
WS_4403_REVOKED = 4403

# Messages per batched frame: enough to catch up fast, small enough to keep frames modest.
MAX_BATCH = 256
# Others' ops wait for this receiver's next ack, or at most this long after its last frame, so a
# busy document costs each receiver one frame per hold instead of one per commit (each frame is
# a send syscall: under 225 authors they were 70% of the server's time). At low load nothing
# waits: the first op after a quiet spell goes at once. The receiver's own messages (acks,
# errors, snapshots, ...) never wait.
BROADCAST_HOLD_SECONDS = 0.025
# An op's seq, found as text in a frame that does not decode: {"type":"op","seq":N,...} in either
# key order, before any nested value (so it is the top-level seq).
_OP_SEQ = re.compile(
    r'\s*\{\s*(?:"type"\s*:\s*"op"\s*,\s*"seq"\s*:\s*(?P<seq>\d+)|"seq"\s*:\s*(?P<seq2>\d+)\s*,\s*"type"\s*:\s*"op")'
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}|\\u[dD][c-fC-F][0-9a-fA-F]{2}")
PONG = text_of(Pong())


class TokenBucket:
    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _Span:
    """Ops ``first``..``last`` of the broadcast log, owed before the outbox messages behind it."""

    __slots__ = ("first", "last")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last


class Session:
    # Thousands stay open, mostly idle: slots, and what few connections use (a re-check's lock
    # and tasks, the presence and fetch bucket) is made when first needed.
    __slots__ = (
        "_chatter",
        "_recheck_lock",
        "_rechecks",
        "bucket",
        "client",
        "close_code",
        "close_reason",
        "deadline",
        "doc",
        "doc_name",
        "expires",
        "expiry",
        "gate",
        "hold",
        "hub",
        "last_send",
        "listening",
        "log",
        "metrics",
        "outbox",
        "queued",
        "queued_bytes",
        "rev",
        "role",
        "sent_rev",
        "settings",
        "spans",
        "subject",
        "token",
        "wake",
        "websocket",
    )

    def __init__(
        self, websocket: WebSocket, hub: Hub, settings: Settings, metrics: Metrics, gate: Gate | None = None
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.gate = gate or Gate.of(settings.secret)
        self.token: str | None = None  # what the hello (or the URL) sent: a re-check sends it again
        self.subject: str | None = None  # who the access says this is (client ids are bound to it)
        self._recheck_lock: asyncio.Lock | None = None
        self._rechecks: set[asyncio.Task[None]] | None = None  # expiry re-checks under way
        self.doc_name: str = websocket.path_params.get("doc", "")
        self.client = ""
        # The revision of the last op or ack queued to this connection: the log's ops after it
        # (up to its head) are owed after everything in the outbox.
        self.rev = 0
        self.sent_rev = 0  # ... and of the last one written: a presence without rev refers to it
        self.role = Role.READ
        self.expires: float | None = None  # when to ask the authorizer again (epoch seconds)
        self.expiry: asyncio.TimerHandle | None = None  # re-checks the access then
        self.deadline: asyncio.TimerHandle | None = None  # for the hello (run sets it, hello cancels it)
        self.doc: Document | None = None
        # The document's broadcast log, read from self.rev on (set by `follow`, at the join).
        self.log: Broadcast | None = None
        self.listening = False  # asked the log for a `ready` at its next append
        # A message, self.rev when it was queued, and its size in bytes; or a span of the log's
        # ops (owed before the messages queued after it, which keep their place in the order).
        # Lists, not deques: an empty deque is ~600 bytes more on every idle connection.
        self.outbox: list[tuple[str, int, int] | _Span] = []
        self.spans: list[_Span] = []  # the spans in the outbox, oldest first
        self.queued = 0  # messages in the outbox, spans' ops included
        self.queued_bytes = 0  # ... and their bytes
        # What the writer waits on, made only while it waits (an asyncio.Event is ~0.9 KB more).
        self.wake: asyncio.Future[None] | None = None
        self.hold: asyncio.TimerHandle | None = None  # others' ops wait (BROADCAST_HOLD_SECONDS)
        self.last_send = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self.bucket = TokenBucket(settings.ops_per_second)
        self._chatter: TokenBucket | None = None

    @property
    def chatter(self) -> TokenBucket:
        """Presence is relayed to every other client and fetch reads the log: limited as ops are,
        in a bucket of their own so that cursor moves never cost a typist an op (made full on
        first use, as it would be by then)."""
        if self._chatter is None:
            self._chatter = TokenBucket(self.settings.ops_per_second)
        return self._chatter

    def _wake(self) -> None:
        """Wake the writer if it waits; when it does not, it looks at what is owed before it does."""
        waiter = self.wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- what the document calls --------------------------------------------------------

    def deliver(self, text: str, rev: int | None = None) -> None:
        """Queue a message of this connection's own (an ack, error, reply, presence): it goes
        after the log's ops queued so far, at once. ``rev``: an ack's, it takes the place of
        that op, which this connection is never sent."""
        if self.close_code is not None:
            return
        log = self.log
        if log is not None:
            upto = log.head if rev is None else min(log.head, rev - 1)
            if upto > self.rev and not self._owe(upto):
                self._too_far_behind()  # its ops are no longer held
                return
        if rev is not None and rev > self.rev:
            self.rev = rev
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        limits = self.settings
        if self.queued >= limits.send_queue_limit or self.queued_bytes + size > limits.send_queue_bytes:
            self._too_far_behind()
            return
        self.outbox.append((text, self.rev, size))
        self.queued += 1
        self.queued_bytes += size
        self._wake()

    def _owe(self, upto: int) -> bool:
        """Queue the log's ops after self.rev up to ``upto`` as a span; False when the log no
        longer holds them."""
        assert self.log is not None
        size = self.log.bytes_after(self.rev, upto)
        if size is None:
            return False
        span = _Span(self.rev + 1, upto)
        self.outbox.append(span)
        self.spans.append(span)
        self.queued += upto - self.rev
        self.queued_bytes += size
        self.rev = upto
        return True

    # -- what the broadcast log calls (broadcast.Follower) -------------------------------

    def follow(self, log: Broadcast) -> None:
        self.log = log
        self.rev = log.head
        log.add(self)
        self.listening = True
        log.idle(self)

    def ready(self) -> None:
        self.listening = False
        if self.close_code is not None or self.hold is not None:
            return
        loop = asyncio.get_running_loop()
        delay = self.last_send + BROADCAST_HOLD_SECONDS - loop.time()
        if delay > 0:
            self.hold = loop.call_later(delay, self._wake)
        else:
            self._wake()

    def position(self) -> int | None:
        if self.close_code is not None or self.log is None:
            return None
        log = self.log
        tail = log.bytes_after(self.rev)
        if (
            tail is None
            or self.queued + max(0, log.head - self.rev) > self.settings.send_queue_limit
            or self.queued_bytes + tail > self.settings.send_queue_bytes
        ):
            self._too_far_behind()
            return None
        return self.spans[0].first - 1 if self.spans else self.rev

    def lost(self) -> None:
        self._too_far_behind()

    def _too_far_behind(self) -> None:
        if self.close_code is None:
            self.metrics.inc("tandem_slow_receivers_total")
        self.request_close(WS_1013_TRY_AGAIN_LATER, "too far behind; reconnect and resume")

    def unavailable(self) -> None:
        self.request_close(WS_1013_TRY_AGAIN_LATER, "the op log is unavailable; resume later")

    def request_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._unfollow()
            self._wake()

    def _unfollow(self) -> None:
        """Stop following the log: what it committed until now is still sent, nothing after."""
        if self.log is not None:
            self.log.discard(self)
            if self.rev < self.log.head:
                self._owe(self.log.head)

    def error(self, code: ErrorCode, message: str, seq: int | None = None) -> None:
        self.metrics.inc("tandem_errors_total", label=code)
        self.deliver(text_of(Error(code=code, message=message, seq=seq)))

    # -- the connection -----------------------------------------------------------------

    async def run(self) -> None:
        await self.websocket.accept()
        self.metrics.inc("tandem_connections")
        writer = asyncio.create_task(self._write())
        # A socket that never says hello holds a descriptor and memory for nothing.
        self.deadline = asyncio.get_running_loop().call_later(self.settings.hello_timeout, self._no_hello)
        try:
            if not valid_doc_id(self.doc_name):
                self.error(ErrorCode.BAD_MESSAGE, bad_doc_id(self.doc_name))
                self.request_close(WS_4400_UNREADABLE, "bad document id")
            else:
                await self._read()
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("session on %r failed", self.doc_name)
            self.request_close(WS_1011_INTERNAL_ERROR, "internal error")
        finally:
            if self.deadline is not None:
                self.deadline.cancel()
            self.metrics.inc("tandem_connections", -1)
            self._leave()
            if self.close_code is None:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    def _no_hello(self) -> None:
        if self.doc is None:
            self.error(ErrorCode.BAD_MESSAGE, f"no hello within {self.settings.hello_timeout:g} s")
            self.request_close(WS_4408_NO_HELLO, "no hello in time")

    def _leave(self) -> None:
        self.gate.leave(self)
        for task in self._rechecks or ():
            task.cancel()
        if self.expiry is not None:
            self.expiry.cancel()  # else it holds this session until the token's end
        if self.doc is not None:
            self.doc.put(Leave(self))
            self.hub.release(self.doc)
            self.doc = None

    async def _read(self) -> None:
        while self.close_code is None:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.metrics.inc("tandem_frames_received_total")
            frame: str | bytes | None = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            size = len(frame)
            if isinstance(frame, str) and 4 * size > self.settings.max_frame_bytes:
                size = len(frame.encode("utf-8", "surrogatepass"))  # only when it might matter
            if size > self.settings.max_frame_bytes:
                self.error(
                    ErrorCode.TOO_LARGE,
                    f"frame of {size} bytes exceeds the limit of {self.settings.max_frame_bytes}",
                )
                self.request_close(WS_4413_TOO_LARGE, "frame too large")
                return
            await self._dispatch(frame)

    async def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = client_message_decoder.decode(frame)
        except msgspec.ValidationError as e:
            self.error(ErrorCode.BAD_MESSAGE, f"not a valid message: {e}", _seq_of(frame))
            return
        except RecursionError:  # readable JSON, nested deeper than the decoder's stack
            self.error(ErrorCode.BAD_MESSAGE, "not a valid message: nested too deeply", _seq_of(frame))
            return
        except msgspec.DecodeError as e:
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            if _SURROGATE_ESCAPE.search(text):
                self.error(
                    ErrorCode.BAD_MESSAGE,
                    "the frame holds a lone surrogate escape (\\udXXX): text must be valid Unicode",
                    _seq_of(frame),
                )
                return
            self.error(ErrorCode.BAD_MESSAGE, f"unreadable frame, not JSON: {e}")
            self.request_close(WS_4400_UNREADABLE, "unreadable frame")
            return
        match message:
            case Ping():
                self.deliver(PONG)
            case Hello():
                await self._hello(message)
            case _ if self.doc is None:
                self.error(
                    ErrorCode.BAD_MESSAGE,
                    f"send hello first, not {type(message).__name__}",
                    getattr(message, "seq", None),
                )
            case SubmitOp():
                await self._op(message)
            case Fetch() | Presence() if not self.chatter.take():
                self.error(
                    ErrorCode.RATE_LIMITED,
                    f"more than {self.settings.ops_per_second:g} "
                    f"{type(message).__name__.lower()} messages per second on this connection",
                )
            case Fetch():
                self.doc.put(FetchRequest(self, message))
            case Presence(cursor, user, rev):
                # the text the cursor is in: the revision the client names, or else the last one it
                # was sent (not merely queued: an op held in the outbox has not reached it)
                stamp = self.sent_rev if rev is None else rev
                update = PresenceUpdate(client=self.client, rev=stamp, cursor=cursor, user=user)
                self.doc.put(PresenceIn(self, update, remote=False))

    async def _hello(self, hello: Hello) -> None:
        if self.doc is not None:
            self.error(ErrorCode.BAD_MESSAGE, "hello was already received on this connection")
            return
        token = hello.token or token_of(self.websocket)
        try:
            granted = await self.gate.check(AuthRequest(self.websocket, self.doc_name, token))
        except AuthError as e:
            self.error(ErrorCode.UNAUTHORIZED, str(e))
            return
        except Exception:
            log.exception("the authorize hook failed on %r", self.doc_name)
            self.error(ErrorCode.INTERNAL, "access could not be checked")
            self.request_close(WS_1011_INTERNAL_ERROR, "access could not be checked")
            return
        if self.gate.binds(granted):
            # One round trip: the client id is this subject's (claimed now, or before), or not.
            try:
                owner = await self.hub.store.claim_client(self.doc_name, hello.client, granted.subject)
            except Exception as e:  # as acquire below: Redis unreachable, or still loading
                log.warning("cannot claim %r on %r", hello.client, self.doc_name, exc_info=True)
                self.error(ErrorCode.UNAVAILABLE, f"cannot open the document: {type(e).__name__}")
                self.unavailable()
                return
            if owner != granted.subject:
                self.error(ErrorCode.UNAUTHORIZED, not_your_client(self.doc_name, hello.client))
                return
        self.role = granted.role
        self.expires = granted.expires
        self.token = token
        self.subject = granted.subject
        self.client = hello.client
        try:
            doc = await self.hub.acquire(self.doc_name)
        except Exception as e:
            log.warning("cannot open %r", self.doc_name, exc_info=True)
            self.error(ErrorCode.UNAVAILABLE, f"cannot open the document: {type(e).__name__}")
            self.unavailable()
            return
        done: asyncio.Future[Error | None] = asyncio.get_running_loop().create_future()
        doc.put(Join(self, hello.rev, done))
        refused = await done
        if refused is not None:
            self.hub.release(doc)
            self.metrics.inc("tandem_errors_total", label=refused.code)
            self.deliver(text_of(refused))
            if refused.code == ErrorCode.UNAVAILABLE:
                self.unavailable()
            return
        self.doc = doc
        if self.deadline is not None:
            self.deadline.cancel()  # else the timer, and this session, stay in memory until it is due
            self.deadline = None
        self.gate.enter(self)
        self._schedule_recheck()

    def _schedule_recheck(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self.expires is not None:
            delay = max(0.0, self.expires - time.time())
            self.expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        """The access is due for a re-check (for a JWT: the token expired)."""
        task = asyncio.create_task(self._recheck(revoked=False, if_due=False))
        if self._rechecks is None:
            self._rechecks = set()
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def recheck(self, revoked: bool) -> None:
        """Ask the authorizer again, with the original handshake and token. Still granted: carry
        on with the new role and expiry. Refused: `unauthorized`, then close with 4401 (expired:
        reconnect with a fresh token) or 4403 (revoked: do not come back). No seq on the error:
        nothing is refused for good, the op in flight is resent on the next connection
        (exactly-once makes that safe)."""
        await self._recheck(revoked, if_due=False)

    async def _recheck(self, revoked: bool, if_due: bool) -> None:
        if self._recheck_lock is None:
            self._recheck_lock = asyncio.Lock()
        async with self._recheck_lock:  # one at a time: a revocation waits for, then repeats, an expiry check
            if self.close_code is not None or self.doc is None:
                return
            if if_due and (self.expires is None or time.time() < self.expires):
                return  # an op waited for a re-check that another one already made
            try:
                access = await self.gate.check(AuthRequest(self.websocket, self.doc_name, self.token))
                if access.subject != self.subject:  # its client id belongs to the old subject
                    raise AuthError("the access now names another user; reconnect")
            except AuthError as e:
                self._refuse(revoked, str(e))
                return
            except Exception:
                log.exception("the authorize hook failed re-checking %r", self.doc_name)
                self.error(ErrorCode.UNAVAILABLE, "access could not be checked again; reconnect later")
                self.request_close(WS_1013_TRY_AGAIN_LATER, "access could not be checked again")
                return
            self.role = access.role
            self.expires = access.expires
            self._schedule_recheck()

    def _refuse(self, revoked: bool, why: str) -> None:
        if self.close_code is not None:
            return
        if revoked:
            self.error(ErrorCode.UNAUTHORIZED, f"your access was revoked: {why}")
            self.request_close(WS_4403_REVOKED, "access revoked")
        else:
            self.error(ErrorCode.UNAUTHORIZED, f"your access expired ({why}); reconnect with a fresh token")
            self.request_close(WS_4401_TOKEN_EXPIRED, "access expired")

    async def _op(self, message: SubmitOp) -> None:
        assert self.doc is not None
        seq = message.seq
        if self.expires is not None and time.time() >= self.expires:  # before the timer fires
            await self._recheck(revoked=False, if_due=True)
            if self.close_code is not None or self.doc is None:
                return
        if self.role is not Role.WRITE:
            self.error(ErrorCode.READ_ONLY, f"your token grants read access to {self.doc_name!r}", seq)
            return
        if not self.bucket.take():
            self.error(
                ErrorCode.RATE_LIMITED,
                f"more than {self.settings.ops_per_second:g} ops per second on this connection",
                seq,
            )
            return
        try:
            ops = validate(message.ops, self.settings.max_components)
        except Refusal as r:
            self.error(r.code, r.message, seq)
            return
        self.doc.put(Submission(self.client, seq, message.base, ops, origin=self, reach=span(message.ops)))

    async def _write(self) -> None:
        send = self.websocket.send_text
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = self._take()
                if frame is None:
                    if self.close_code is not None:
                        break
                    self.wake = loop.create_future()
                    if self.log is not None and not self.listening:
                        self.listening = True
                        self.log.idle(self)
                    try:
                        await self.wake
                    finally:
                        self.wake = None
                    if self.hold is not None:  # woken early (an ack, a close) or by it
                        self.hold.cancel()
                        self.hold = None
                    continue
                text, count, rev = frame
                await send(text)
                del text  # not kept while idle: the last frame may be a big document's snapshot
                self.sent_rev = rev
                self.last_send = loop.time()
                self.metrics.inc("tandem_frames_sent_total")
                self.metrics.inc("tandem_messages_sent_total", count)
            await self.websocket.close(self.close_code or 1000, self.close_reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the peer went away; the reader notices too
        finally:
            if self.close_code is None:
                self.close_code = 1000
            if self.log is not None:
                self.log.discard(self)
            if self.hold is not None:
                self.hold.cancel()
            self._drop_queued()

    def _take(self) -> tuple[str, int, int] | None:
        """The next frame to send: up to `MAX_BATCH` messages, those of the outbox first, then the
        log's ops after self.rev; its text, its message count and the revision it brings the
        receiver to. None when nothing is owed (or what is owed is lost: closing)."""
        parts: list[str] = []
        rev = self.sent_rev
        outbox = self.outbox
        log = self.log
        taken = 0  # outbox[:taken] go in this frame
        while taken < len(outbox) and len(parts) < MAX_BATCH:
            item = outbox[taken]
            if isinstance(item, _Span):
                assert log is not None
                last = min(item.last, item.first - 1 + MAX_BATCH - len(parts))
                ops = log.frames(item.first - 1, last)
                size = log.bytes_after(item.first - 1, last)
                if ops is None or size is None:  # dropped from the log: too far behind
                    self._too_far_behind()
                    self._drop_queued()
                    return None
                parts += ops
                self.queued -= len(ops)
                self.queued_bytes -= size
                rev = last
                if last == item.last:
                    taken += 1
                    del self.spans[0]
                else:
                    item.first = last + 1
            else:
                taken += 1
                text, rev, size = item
                parts.append(text)
                self.queued -= 1
                self.queued_bytes -= size
        del outbox[:taken]
        if not outbox and log is not None and self.close_code is None and self.rev < log.head:
            last = min(log.head, self.rev + MAX_BATCH - len(parts))
            if last > self.rev:
                ops = log.frames(self.rev, last)
                if ops is None:  # cannot be while following; kept as a guard
                    self._too_far_behind()
                    self._drop_queued()
                    return None
                parts += ops
                self.rev = rev = last
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0], 1, rev
        return "[" + ",".join(parts) + "]", len(parts), rev

    def _drop_queued(self) -> None:
        self.outbox.clear()
        self.spans.clear()
        self.queued = self.queued_bytes = 0


def _seq_of(frame: str | bytes) -> int | None:
    """The seq of a frame that failed validation, when it has one, so the client can match it.

    A frame that does not decode (a lone surrogate, nesting too deep) is searched for an op's
    top-level seq as text: the client learns which of its ops was refused either way."""
    try:
        raw: Any = msgspec.json.decode(frame)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nesting deeper than the stack
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        found = _OP_SEQ.match(text)
        digits = (found["seq"] or found["seq2"]) if found else ""
        return int(digits) if 0 < len(digits) <= 16 else None
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
