"""The documents open in this process, the op log they share, and the notifications from
other processes routed to them.

A document opens on first use (subscribe first, then load, so no commit of another
process falls between the two) and closes a little after its last user leaves. A slow
periodic head check of every open document closes the window of a lost notification, and a
periodic presence refresh lets the cursors of a process that died expire (server/presence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

import msgspec

from tandem.ot.protocol import PresenceUpdate
from tandem.server.document import Document, HeadCheck, PresenceIn, Remote
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import OpStore

log = logging.getLogger("tandem.hub")

IDLE_CLOSE_SECONDS = 5.0
_presence_decoder = msgspec.json.Decoder(PresenceUpdate)


class Hub:
    def __init__(self, store: OpStore, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.process_id = secrets.token_hex(6).encode()
        self.store = store
        self.docs: dict[str, Document] = {}
        self._opening: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[object]] = set()
        self._checker: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.store.start_listening(self._on_message)
        self._checker = asyncio.create_task(self._check_heads(), name="tandem-head-check")
        self._refresher = asyncio.create_task(self._refresh_presence(), name="tandem-presence-refresh")

    async def close(self) -> None:
        for periodic in (self._checker, self._refresher):
            if periodic is not None:
                periodic.cancel()
        for task in list(self._background):
            task.cancel()
        for doc in list(self.docs.values()):
            await doc.stop()
        self.docs.clear()

    async def acquire(self, name: str) -> Document:
        """The open document ``name``, opened if needed; pair with `release`."""
        doc = self.docs.get(name)
        if doc is None:
            doc = Document(name, self.store, self.settings, self.metrics, self._publish_presence)
            self.docs[name] = doc
            self._opening[name] = asyncio.create_task(self._open(doc))
            self.metrics.set("tandem_open_documents", len(self.docs))
        doc.users += 1
        opening = self._opening.get(name)
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                doc.users -= 1
                if self.docs.get(name) is doc:
                    del self.docs[name]
                raise
        return doc

    def held(self, name: str) -> Document | None:
        """The document ``name`` when it is open and loaded here (nothing is opened for it)."""
        doc = self.docs.get(name)
        return doc if doc is not None and name not in self._opening else None

    def release(self, doc: Document) -> None:
        doc.users -= 1
        if doc.users <= 0:
            self._spawn(self._close_when_idle(doc))

    async def _open(self, doc: Document) -> None:
        try:
            await self.store.subscribe(doc.name)
            await doc.load()
            doc.start()
        except BaseException:
            await self.store.unsubscribe(doc.name)
            # Nobody may join a document that did not open: a session arriving between this
            # failure and the wake-up of the first waiter would otherwise get it, never started,
            # and wait for its hello to be answered forever.
            if self.docs.get(doc.name) is doc:
                del self.docs[doc.name]
            raise
        finally:
            self._opening.pop(doc.name, None)

    async def _close_when_idle(self, doc: Document) -> None:
        await asyncio.sleep(IDLE_CLOSE_SECONDS)
        if doc.users > 0 or self.docs.get(doc.name) is not doc:
            return
        del self.docs[doc.name]
        self.metrics.set("tandem_open_documents", len(self.docs))
        await doc.stop()
        # A document of the same name opened meanwhile has subscribed: keep its subscription.
        if doc.name not in self.docs:
            await self.store.unsubscribe(doc.name)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _publish_presence(self, name: str, frame: bytes) -> None:
        async def publish() -> None:
            with contextlib.suppress(Exception):
                await self.store.publish(name, self.process_id + b" " + frame)

        self._spawn(publish())

    def _on_message(self, name: str, data: bytes) -> None:
        doc = self.docs.get(name)
        if doc is None:
            return
        if data[:1] == b"{":  # the ops of one group commit, one frame a line
            if name not in self._opening and doc.learns_otherwise(_last_rev(data)):
                return  # this process's own commit, or ops it already holds: costs nothing more
            for frame in data.split(b"\n"):
                doc.put(Remote(frame))
            return
        if name in self._opening:
            return
        sender, _, frame = data.partition(b" ")
        if sender != self.process_id:
            try:
                update = _presence_decoder.decode(frame)
            except msgspec.DecodeError:  # ValidationError too: an older process may relay what is refused now
                log.debug("%s: dropped an invalid presence from process %r", name, sender)
                return
            doc.put(PresenceIn(None, update, remote=True))

    async def _check_heads(self) -> None:
        while True:
            await asyncio.sleep(self.settings.head_check_seconds)
            for doc in list(self.docs.values()):
                if doc.name not in self._opening:
                    doc.put(HeadCheck())

    async def _refresh_presence(self) -> None:
        """Every refresh, each document holding cursors re-publishes its own clients' and drops
        those of other processes gone silent (a process that died cannot say they left)."""
        while True:
            await asyncio.sleep(self.settings.presence_refresh_seconds)
            for doc in list(self.docs.values()):
                if doc.presence.cursors and doc.name not in self._opening:
                    doc.put(PresenceIn(None, doc.presence.REFRESH, remote=True))


def _last_rev(data: bytes) -> int | None:
    """The revision of the last op in a commit's message, read without decoding it: its frames are
    consecutive revisions, one a line, each opening with {"type":"op","rev":N (None: not so)."""
    start = data.find(b'"rev":', 0, 40)
    if start < 0:
        return None
    end = data.find(b",", start)
    try:
        return int(data[start + 6 : end]) + data.count(b"\n")
    except ValueError:
        return None
