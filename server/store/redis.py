"""The op log in Redis. Every Redis key, channel and Lua script of Tandem lives here.

Keys of one document share the hash tag ``{doc}``, so Redis Cluster keeps a document on
one node and the commit script may touch all of them:

- ``tandem:{doc}:log``      Stream, entry id ``<rev>-1``, field ``r`` = the CommittedOp frame.
                            Redis itself refuses an id not above the last one: a second guard.
- ``tandem:{doc}:head``     Hash ``rev``, ``hash``.
- ``tandem:{doc}:clients``  Hash client -> ``seq:rev:hash`` of its last committed op
                            (exactly-once, across restarts).
- ``tandem:{doc}:owners``   Hash client -> the token subject (`sub`) that first used that client
                            id on the document (HSETNX, never removed); only with a secret.
- ``tandem:{doc}:snaps``    Hash rev -> Snapshot frame; ``tandem:{doc}:snaprevs`` ZSet of those revs.
- channel ``tandem:{doc}:events``: the committed op frames of one commit, newline-separated
                            (compact JSON holds no raw newline), and presence as ``<process id> <frame>``.
- channel ``tandem:control``: messages to every process, such as a revocation (server/embed.py).

Change hooks (server/hooks.py) read the log itself, so they add only:

- consumer group ``<hook name>`` on ``tandem:{doc}:log``, one consumer ``tandem``: where that hook
                            has read the document to, and the revisions delivered but not acknowledged.
- ``tandem:{doc}:hook:<hook name>``  String: the runner draining that hook on that document
                            (SET NX PX, a lease), so one process at a time delivers it, in order.

Why a Lua script and not a bare XADD with an explicit id: the id alone guards the head,
but exactly-once needs the client's last seq checked and recorded in the same atomic step.
The hashes are computed in Python beforehand (the expected head carries the previous hash),
so the script stays small and does no JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tandem.ot.operation import apply
from tandem.ot.protocol import Snapshot
from tandem.server.store.base import (
    PAGE_BYTES,
    ClientRecord,
    CommitResult,
    ControlListener,
    Head,
    HistoryGone,
    Listener,
    StoredOp,
    StoreUnavailable,
    encode,
    genesis,
    snapshot_decoder,
)
from tandem.server.store.pipe import RedisPipe
from tandem.server.store.subscriber import Subscriber

log = logging.getLogger("tandem.store")

# What says the log cannot be reached (redis-py's own and the pipelined connection's errors):
# nothing is known to be decided. Any other RedisError is a bug and stays one.
_UNREACHABLE = (OSError, RedisConnectionError, RedisTimeoutError)

# Work (see text_at) done between two turns of the event loop: ~10 ms.
_APPLY_SLICE = 20_000

CONTROL_CHANNEL = "tandem:control"
_CONTROL_BYTES = CONTROL_CHANNEL.encode()
_PROCESS_CHANNEL = "tandem:process"
_PROCESS_BYTES = _PROCESS_CHANNEL.encode()

# How long the listener waits for a message while holding the pub/sub connection.
_LISTEN_POLL_SECONDS = 0.05

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_when_unreachable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Raise `StoreUnavailable` in place of Redis's connection errors: nothing of redis-py
    crosses the store boundary."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as e:
            raise StoreUnavailable(f"{type(e).__name__}: {e}") from e

    return wrapper


# KEYS: head, log, clients, snaps, snaprevs
# ARGV: channel, expected rev, n, then n x (client, seq, rev, hash, frame), snapshot rev
#       (0: none), snapshot frame, trim bound (0: none): the log is trimmed to just after
#       the latest snapshot at or below the bound, and the snapshots before that one are deleted
COMMIT = """
local head_rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if head_rev ~= tonumber(ARGV[2]) then
  return {'moved', head_rev, redis.call('HGET', KEYS[1], 'hash') or ''}
end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local a = 4 + i * 5
  local last = redis.call('HGET', KEYS[3], ARGV[a])
  if last then
    local seq, rev, hash = string.match(last, '^(%d+):(%d+):(%x+)$')
    if tonumber(seq) >= tonumber(ARGV[a + 1]) then
      return {'duplicate', i, tonumber(seq), tonumber(rev), hash}
    end
  end
end
local frames = {}
for i = 0, n - 1 do
  local a = 4 + i * 5
  redis.call('XADD', KEYS[2], ARGV[a + 2] .. '-1', 'r', ARGV[a + 4])
  redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 1] .. ':' .. ARGV[a + 2] .. ':' .. ARGV[a + 3])
  frames[i + 1] = ARGV[a + 4]
end
-- one message per group commit: every subscriber parses one message, not one per op
redis.call('PUBLISH', ARGV[1], table.concat(frames, '\\n'))
local z = 4 + n * 5
local l = z - 5
redis.call('HSET', KEYS[1], 'rev', ARGV[l + 2], 'hash', ARGV[l + 3])
if ARGV[z] ~= '0' then
  redis.call('HSET', KEYS[4], ARGV[z], ARGV[z + 1])
  redis.call('ZADD', KEYS[5], ARGV[z], ARGV[z])
end
if ARGV[z + 2] ~= '0' then
  -- keep the log from just after a snapshot, so every kept revision can be rebuilt and verified
  local s = redis.call('ZREVRANGEBYSCORE', KEYS[5], ARGV[z + 2], 1, 'LIMIT', 0, 1)[1]
  if s then
    redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(s) + 1) .. '-1')
    -- snapshots before s rebuild no kept revision: drop them (a bounded batch per commit)
    local old = redis.call('ZRANGEBYSCORE', KEYS[5], 1, '(' .. s, 'LIMIT', 0, 256)
    for _, r in ipairs(old) do
      redis.call('HDEL', KEYS[4], r)
      redis.call('ZREM', KEYS[5], r)
    end
  end
end
return {'ok'}
"""


# KEYS: owners; ARGV: client, subject ('' : only look). One round trip: claim when free, say who owns.
CLAIM = """
if ARGV[2] ~= '' then
  redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""


# KEYS: log; ARGV: first id, last id, max bytes. The frames from first on, stopping after the one
# that reaches max bytes: a page bounded in bytes, read a few entries at a time so Redis never
# holds more than that either. ('(' makes the next start exclusive.)
OPS_PAGE = """
local out, size, start = {}, 0, ARGV[1]
local budget = tonumber(ARGV[3])
while true do
  local batch = redis.call('XRANGE', KEYS[1], start, ARGV[2], 'COUNT', 16)
  if #batch == 0 then return out end
  for _, entry in ipairs(batch) do
    local frame = entry[2][2]
    out[#out + 1] = frame
    size = size + #frame
    if size >= budget then return out end
  end
  start = '(' .. batch[#batch][1]
end
"""


# KEYS: lease; ARGV: holder, milliseconds. Take the lease when free, extend it when ours: 1, else 0.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease; ARGV: holder. Give the lease back only when it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# The one consumer of every hook group: the lease, not the consumer name, decides who reads,
# so a process that died leaves its unacknowledged entries to whoever takes the lease next.
HOOK_CONSUMER = "tandem"


class Keys:
    """The key names of one document."""

    def __init__(self, doc: str) -> None:
        prefix = "tandem:{" + doc + "}:"
        self.head = prefix + "head"
        self.log = prefix + "log"
        self.clients = prefix + "clients"
        self.owners = prefix + "owners"
        self.snaps = prefix + "snaps"
        self.snaprevs = prefix + "snaprevs"
        self.channel = prefix + "events"
        self.prefix = prefix

    def hook_lease(self, hook: str) -> str:
        return self.prefix + "hook:" + hook

    def commit_keys(self) -> list[str]:
        return [self.head, self.log, self.clients, self.snaps, self.snaprevs]


def doc_of_channel(channel: bytes) -> str:
    text = channel.decode()
    return text[text.index("{") + 1 : text.rindex("}")]


def _entry_id(rev: int) -> str:
    return f"{rev}-1"


# Connections per cluster node beyond ``max_connections``: the pub/sub connection holds one.
_CLUSTER_NODE_SPARE = 2


class _WaitingCluster(aioredis.RedisCluster):
    """A cluster client whose calls wait for a turn: redis-py's cluster nodes have no blocking
    pool and refuse a call past their connection limit (MaxConnectionsError). At most
    ``max_connections`` calls run at once, so no node is asked for more connections than that."""

    def __init__(self, *, turns: int, wait: float | None, **kwargs: Any) -> None:
        super().__init__(max_connections=turns + _CLUSTER_NODE_SPARE, **kwargs)
        self._turns = asyncio.Semaphore(turns)
        self._wait = wait

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._wait):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError(f"no connection to Redis free within {self._wait:g} s") from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._turns.release()


def _client(url: str, *, cluster: bool, timeout: float | None, max_connections: int) -> Any:
    """A redis-py client whose calls wait (up to ``timeout``) for one of ``max_connections``
    connections instead of failing when all are busy, as a storm of reconnects makes them."""
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_connect_timeout": 5,
        "socket_timeout": timeout,
    }
    if cluster:
        return _WaitingCluster.from_url(url, turns=max_connections, wait=timeout, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, health_check_interval=30, **options
    )
    return aioredis.Redis.from_pool(pool)


class RedisOpStore:
    """`OpStore` over redis.asyncio.

    ``log_retention``: revisions of log kept behind the latest snapshot (0: all). ``cluster``:
    ``url`` names a node of a Redis Cluster. ``timeout``: seconds a call may wait for an
    answer. ``pipelined``: commit over the lean pipelined connection (default: where the URL
    allows, never on a cluster); False commits through redis-py. ``max_connections``: redis-py
    connections at most (per node on a cluster); a call waits up to ``timeout`` for a free one.
    """

    def __init__(
        self,
        url: str,
        *,
        log_retention: int = 0,
        cluster: bool = False,
        timeout: float | None = None,
        pipelined: bool | None = None,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        # On a cluster every command of one document goes to the node owning its hash tag;
        # PUBLISH reaches subscribers on any node, so one pub/sub connection still hears all.
        # Any: redis-py's asyncio replies are typed loosely (bytes | str | None everywhere).
        # ``timeout``: a Redis that stops answering fails a call (TimeoutError, `unavailable`)
        # instead of holding a document's task forever.
        self.redis: Any = _client(url, cluster=cluster, timeout=timeout, max_connections=max_connections)
        self.listener: Listener | None = None
        self.log_retention = log_retention
        # The commit goes over a lean pipelined connection (server/store/pipe.py) except on a cluster.
        if pipelined is None:
            pipelined = not cluster and RedisPipe.supports(url)
        if pipelined and (cluster or not RedisPipe.supports(url)):
            raise ValueError(
                f"the pipelined commit connection cannot serve {url!r}" + (" on a cluster" if cluster else "")
            )
        self._pipe = RedisPipe(url, timeout=timeout) if pipelined else None
        # Otherwise over redis-py, whose retries may send a commit again after its reply was
        # lost (a cluster client needs them): the second run answers ``moved`` or ``duplicate``,
        # and the document answers the submission from the log, as an ack (server/document.py).
        self._commit = self.redis.register_script(COMMIT)
        self._ops_page = self.redis.register_script(OPS_PAGE)
        self._claim = self.redis.register_script(CLAIM)
        self._lease = self.redis.register_script(LEASE)
        self._release = self.redis.register_script(RELEASE)
        self._channels: set[str] = set()
        # Where the lean commit connection serves, so does a lean pub/sub connection (subscriber.py);
        # otherwise redis-py's PubSub, polled by `_listen`.
        self._subscriber = Subscriber(url, self._on_pushed, timeout) if self._pipe is not None else None
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._pubsub: aioredis.client.PubSub | None = None
        self._pubsub_lock = asyncio.Lock()
        self._listen_task: asyncio.Task[None] | None = None
        self._control: ControlListener | None = None

    # -- commits and reads --------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    @_unavailable_when_unreachable
    async def head(self, doc: str) -> Head:
        rev, hash_ = await self.redis.hmget(Keys(doc).head, ["rev", "hash"])
        if rev is None:
            return Head(0, genesis(doc).hash)
        return Head(int(rev), hash_.decode())

    @_unavailable_when_unreachable
    async def commit(
        self, doc: str, expected_rev: int, records: Sequence[StoredOp], snapshot: Snapshot | None = None
    ) -> CommitResult:
        keys = Keys(doc)
        args: list[str | bytes | int] = [keys.channel, expected_rev, len(records)]
        for r in records:
            args += [r.op.client, r.op.seq, r.op.rev, r.op.hash, r.frame]
        trim = 0
        if snapshot is not None:
            args += [snapshot.rev, encode(snapshot)]
            if self.log_retention > 0 and snapshot.rev - self.log_retention >= 1:
                trim = snapshot.rev - self.log_retention
        else:
            args += [0, b""]
        args.append(trim)
        if self._pipe is not None:
            reply = await self._pipe.evalsha(self._commit.sha, COMMIT, keys.commit_keys(), args)
        else:
            reply = await self._commit(keys=keys.commit_keys(), args=args)
        status = reply[0].decode()
        if status == "ok":
            return CommitResult("ok")
        if status == "moved":
            return CommitResult("moved", head=Head(int(reply[1]), reply[2].decode() or genesis(doc).hash))
        return CommitResult(
            "duplicate",
            index=int(reply[1]),
            original=ClientRecord(int(reply[2]), int(reply[3]), reply[4].decode()),
        )

    @_unavailable_when_unreachable
    async def ops(self, doc: str, first: int, last: int, max_bytes: int | None = None) -> list[StoredOp]:
        if last < first:
            return []
        if max_bytes is not None:
            frames = await self._ops_page(
                keys=[Keys(doc).log], args=[_entry_id(max(first, 1)), _entry_id(last), max_bytes]
            )
            return [StoredOp.from_frame(frame) for frame in frames]
        entries = await self.redis.xrange(Keys(doc).log, _entry_id(max(first, 1)), _entry_id(last))
        return [StoredOp.from_frame(fields[b"r"]) for _, fields in entries]

    @_unavailable_when_unreachable
    async def first_logged_rev(self, doc: str) -> int | None:
        entries = await self.redis.xrange(Keys(doc).log, "-", "+", count=1)
        if not entries:
            return None
        return int(entries[0][0].split(b"-")[0])

    @_unavailable_when_unreachable
    async def snapshot_at_or_before(self, doc: str, rev: int) -> Snapshot:
        keys = Keys(doc)
        revs = await self.redis.zrevrangebyscore(keys.snaprevs, rev, 1, start=0, num=1)
        if not revs:
            return genesis(doc)
        frame = await self.redis.hget(keys.snaps, revs[0])
        if frame is None:
            return genesis(doc)
        return snapshot_decoder.decode(frame)

    @_unavailable_when_unreachable
    async def text_at(self, doc: str, rev: int) -> Snapshot:
        """The document at revision ``rev`` (at most the head): a snapshot plus the ops after it."""
        snap = await self.snapshot_at_or_before(doc, rev)
        text, at, hash_ = snap.text, snap.rev, snap.hash
        work = 0
        while at < rev:  # a page at a time, with a turn of the event loop between slices of work
            page = await self.ops(doc, at + 1, rev, max_bytes=PAGE_BYTES)
            if not page or page[0].op.rev != at + 1:
                raise HistoryGone(
                    f"the log of {doc!r} no longer holds revisions {at + 1}..{rev} "
                    f"(nearest snapshot: revision {snap.rev})"
                )
            for stored in page:
                text = apply(text, stored.op.ops)
                # applying copies the text (fast) and walks the op's components (slower)
                work += len(stored.op.ops) + len(text) // 64
                if work >= _APPLY_SLICE:
                    work = 0
                    await asyncio.sleep(0)
            at, hash_ = page[-1].op.rev, page[-1].op.hash
        return Snapshot(rev=rev, text=text, hash=hash_)

    @_unavailable_when_unreachable
    async def client_record(self, doc: str, client: str) -> ClientRecord | None:
        raw = await self.redis.hget(Keys(doc).clients, client)
        if raw is None:
            return None
        seq, rev, hash_ = raw.decode().split(":")
        return ClientRecord(int(seq), int(rev), hash_)

    @_unavailable_when_unreachable
    async def claim_client(self, doc: str, client: str, subject: str | None) -> str | None:
        # an empty subject never comes from a token (auth.py refuses it), so '' can mean "only look"
        owner = await self._claim(keys=[Keys(doc).owners], args=[client, subject or ""])
        return None if owner is None else bytes(owner).decode()

    # -- change hooks (server/hooks.py): a consumer group per hook on each log ------------

    async def hook_docs(self, count: int = 1000) -> AsyncIterator[str]:
        """Every document that has a log (on a cluster, on every master), a SCAN page at a time."""
        try:
            async for key in self.redis.scan_iter(match="tandem:*:log", count=count, _type="stream"):
                yield doc_of_channel(key)
        except _UNREACHABLE as e:
            raise StoreUnavailable(f"{type(e).__name__}: {e}") from e

    @_unavailable_when_unreachable
    async def hook_join(self, doc: str, hook: str, after: int | None) -> bool:
        """Create ``hook``'s group on the log of ``doc``, to read the revisions after ``after``
        (None: those committed from now on). False when it exists: its position is kept."""
        start = "$" if after is None else _entry_id(after) if after > 0 else "0"
        try:
            await self.redis.xgroup_create(Keys(doc).log, hook, id=start, mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" in str(e):
                return False
            raise
        return True

    @_unavailable_when_unreachable
    async def hook_lease(self, doc: str, hook: str, holder: str, ms: int) -> bool:
        """Take or extend the lease on delivering ``hook`` for ``doc``; False: another holds it."""
        return bool(await self._lease(keys=[Keys(doc).hook_lease(hook)], args=[holder, ms]))

    @_unavailable_when_unreachable
    async def hook_release(self, doc: str, hook: str, holder: str) -> None:
        await self._release(keys=[Keys(doc).hook_lease(hook)], args=[holder])

    @_unavailable_when_unreachable
    async def hook_position(self, doc: str, hook: str) -> tuple[int, int, int] | None:
        """(last revision handed to ``hook``, revisions pending on it, head revision), or None
        when the hook has no group on ``doc`` yet."""
        keys = Keys(doc)
        try:
            groups = await self.redis.xinfo_groups(keys.log)
        except ResponseError:  # no log at all
            return None
        rev = await self.redis.hget(keys.head, "rev")
        head = int(rev) if rev is not None else 0
        for group in groups:
            if group["name"] == hook.encode():
                last = int(group["last-delivered-id"].split(b"-")[0])
                return last, int(group["pending"]), head
        return None

    @_unavailable_when_unreachable
    async def hook_read(
        self, doc: str, hook: str, count: int, pending: bool
    ) -> list[tuple[int, bytes | None]]:
        """Up to ``count`` (revision, frame) of ``hook`` on ``doc``, in order: those handed out but
        not acknowledged (``pending``), else the next ones. A frame is None when retention
        trimmed that revision from the log before it was acknowledged."""
        reply = await self.redis.xreadgroup(
            hook, HOOK_CONSUMER, {Keys(doc).log: "0" if pending else ">"}, count=count
        )
        if not reply:
            return []
        entries = reply[0][1]
        return [(int(id_.split(b"-")[0]), fields[b"r"] if fields else None) for id_, fields in entries]

    @_unavailable_when_unreachable
    async def hook_ack(self, doc: str, hook: str, revs: Sequence[int]) -> None:
        if revs:
            await self.redis.xack(Keys(doc).log, hook, *(_entry_id(r) for r in revs))

    # -- between processes --------------------------------------------------------------

    @_unavailable_when_unreachable
    async def publish(self, doc: str, message: bytes) -> None:
        await self.redis.publish(Keys(doc).channel, message)

    def listen_control(self, listener: ControlListener) -> None:
        self._control = listener

    @_unavailable_when_unreachable
    async def publish_control(self, message: bytes) -> None:
        await self.redis.publish(CONTROL_CHANNEL, message)

    async def subscribe(self, doc: str) -> None:
        channel = Keys(doc).channel
        self._channels.add(channel)
        if self._subscriber is not None:
            await self._subscriber.subscribe(channel)
        else:
            await self._on_pubsub("subscribe", channel)

    async def unsubscribe(self, doc: str) -> None:
        channel = Keys(doc).channel
        self._channels.discard(channel)
        if self._subscriber is not None:
            await self._subscriber.unsubscribe(channel)
        else:
            await self._on_pubsub("unsubscribe", channel)

    def _on_pushed(self, channel: bytes, data: bytes) -> None:
        """A message on a subscribed channel: a document's, or the control channel's."""
        if channel == _CONTROL_BYTES:
            if self._control is not None:
                task = asyncio.create_task(self._on_control(data))
                self._control_tasks.add(task)
                task.add_done_callback(self._control_tasks.discard)
            return
        if self.listener is not None and channel != _PROCESS_BYTES:
            self.listener(doc_of_channel(channel), data)

    async def _on_control(self, data: bytes) -> None:
        assert self._control is not None
        try:
            await self._control(data)
        except Exception:
            log.exception("control listener failed")

    async def _on_pubsub(self, command: str, channel: str) -> None:
        """(Un)subscribe on the live pub/sub connection, if there is one.

        Under ``_pubsub_lock``: redis-py's pub/sub connection takes one reader at a time (its
        health check reads a PING's answer), and the listener reads it too. A failure never
        fails the caller: the listener subscribes to every channel in ``_channels`` each time
        it reconnects, and documents re-read their head, so a lost subscription costs latency.
        """
        async with self._pubsub_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                await getattr(pubsub, command)(channel)
            except Exception as e:
                log.info(
                    "%s %s failed (%s: %s); the listener repairs it", command, channel, type(e).__name__, e
                )

    def start_listening(self, listener: Listener) -> None:
        self.listener = listener
        if self._subscriber is not None:
            # a channel of its own keeps the connection subscribed when no document is open
            self._subscriber.start(_PROCESS_CHANNEL, CONTROL_CHANNEL, *self._channels)
        elif self._listen_task is None:
            self._listen_task = asyncio.create_task(self._listen(), name="tandem-pubsub")

    async def _listen(self) -> None:
        # A lost message or a dropped connection costs latency only: documents repair
        # gaps from the log and re-read their head periodically.
        while True:
            if isinstance(self.redis, aioredis.RedisCluster):
                # A cluster client learns its slot map on first use; pub/sub needs it first.
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.initialize()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with self._pubsub_lock:
                    # a channel of its own keeps the connection subscribed when no document is open
                    await pubsub.subscribe(_PROCESS_CHANNEL, CONTROL_CHANNEL, *self._channels)
                    self._pubsub = pubsub
                while True:
                    # a short wait: a subscription waits for the lock at most this long
                    async with self._pubsub_lock:
                        message = await pubsub.get_message(timeout=_LISTEN_POLL_SECONDS)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        self._on_pushed(message["channel"], message["data"])
                    except Exception:
                        log.exception("the listener failed on a message of %r", message["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let the listener die: it is this process's ears
                log.warning("pub/sub connection lost (%s: %s); reconnecting", type(e).__name__, e)
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(0.5)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._subscriber is not None:
            await self._subscriber.close()
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
            self._listen_task = None
        if self._pipe is not None:
            await self._pipe.close()
        await self.redis.aclose()
