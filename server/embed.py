"""Tandem inside another ASGI application (FastAPI, Starlette, ...), under a prefix.

    tandem = Tandem(Settings(redis_url=...), authorize=my_hook)
    app = FastAPI(lifespan=tandem.lifespan)
    app.mount("/collab", tandem.app)

A mounted application gets no lifespan events of its own, so the host starts and stops Tandem:
`running()` (an async context manager) or `lifespan` (for ``lifespan=``). Every route, the
editor page and its scripts work under any prefix: the page finds its WebSocket and HTTP URLs
from where its scripts were served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from tandem.server import http
from tandem.server.auth import Authorizer, Gate, origin_allowed
from tandem.server.hooks import Hook, HookRunner, hooks_from_settings
from tandem.server.hub import Hub
from tandem.server.metrics import Metrics
from tandem.server.redis_process import RedisProcess
from tandem.server.session import WS_1013_TRY_AGAIN_LATER, Session
from tandem.server.settings import Settings
from tandem.server.store.base import StoreUnavailable
from tandem.server.store.redis import RedisOpStore

log = logging.getLogger("tandem")

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class Revocation(msgspec.Struct, frozen=True):
    """Published on the control channel: every process re-checks `subject`'s sockets."""

    subject: str
    doc: str | None
    sender: str  # the process that published it has re-checked its own already


_revocation_decoder = msgspec.json.Decoder(Revocation)


class Tandem:
    """One Tandem server as an ASGI application to mount (`app`), started by `running()`.

    ``authorize``: the access hook (server/auth.py, `Authorizer`); without it, ``settings.secret``
    selects the JWT mode, and with neither the server is open.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        authorize: Authorizer | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.hooks = list(hooks)  # change hooks, besides the webhook the settings may name
        self.gate = Gate.of(self.settings.secret, authorize)
        self.metrics = Metrics()
        self.process_id = secrets.token_hex(6)
        self.hub: Hub | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        unavailable: Any = http.store_unavailable
        # no lifespan: a mounted app gets none; the host runs `running()` instead
        self.app = Starlette(routes=self._routes(), exception_handlers={StoreUnavailable: unavailable})
        state = self.app.state
        state.settings, state.metrics, state.gate, state.tandem = self.settings, self.metrics, self.gate, self
        state.draining = False

    def _routes(self) -> list[Any]:
        web_dir = self.settings.web_dir or DEFAULT_WEB_DIR
        routes: list[Any] = [
            Route("/", http.homepage_for(web_dir)),  # type: ignore[arg-type]
            Route("/healthz", http.healthz),
            Route("/livez", http.livez),
            Route("/metrics", http.metrics),
            Route("/docs/{doc}", http.get_doc),
            Route("/docs/{doc}/ops", http.get_ops, methods=["GET"]),
            Route("/docs/{doc}/ops", http.post_op, methods=["POST"]),
            Route("/docs/{doc}/verify", http.verify),
            WebSocketRoute("/ws/{doc}", self._websocket),
        ]
        if web_dir.is_dir():
            routes.append(Mount("/web", app=StaticFiles(directory=web_dir), name="web"))
        return routes

    async def _websocket(self, websocket: WebSocket) -> None:
        settings, metrics = self.settings, self.metrics
        if not origin_allowed(settings.allowed_origins, websocket.headers.get("origin")):
            await websocket.close(code=4403, reason="origin not allowed")
            return
        if self.hub is None:
            log.error(
                "a WebSocket arrived while Tandem is not running: start it with `async with tandem.running()`"
            )
            await websocket.accept()
            await websocket.close(code=WS_1013_TRY_AGAIN_LATER, reason="not running")
            return
        if metrics.get("tandem_connections") >= settings.max_connections:
            # refused with a code the clients retry on, before the process runs out of descriptors
            metrics.inc("tandem_connections_refused_total")
            await websocket.accept()
            await websocket.close(
                code=WS_1013_TRY_AGAIN_LATER, reason="too many connections; try again later"
            )
            return
        await Session(websocket, self.hub, settings, metrics, self.gate).run()

    @contextlib.asynccontextmanager
    async def running(self, on_ready: Callable[[], None] | None = None) -> AsyncIterator[Tandem]:
        """Start the store (the embedded Redis when ``settings.redis_url`` is None, its data in
        ``settings.data_dir``), the hub and the background tasks; stop them all on exit."""
        if self.hub is not None:
            raise RuntimeError("this Tandem is already running")
        settings = self.settings
        embedded: RedisProcess | None = None
        url = settings.redis_url
        if url is None:
            embedded = RedisProcess(settings.data_dir, fsync=settings.fsync)
            await asyncio.to_thread(embedded.start)
            url = embedded.url
            log.info("embedded redis-server on %s, data in %s", url, embedded.data_dir)
        store: RedisOpStore | None = None
        runner: HookRunner | None = None
        try:
            store = RedisOpStore(
                url,
                log_retention=settings.log_retention,
                cluster=settings.redis_cluster,
                timeout=settings.redis_timeout,
                max_connections=settings.redis_max_connections,
            )
            hub = Hub(store, settings, self.metrics)
            store.listen_control(self._on_control)
            state = self.app.state
            state.hub, state.redis_url, state.draining = hub, url, False
            hub.start()
            self.hub = hub
            every_hook = [*self.hooks, *hooks_from_settings(settings)]
            if every_hook:  # delivered from the op log itself, whichever process committed
                runner = HookRunner(store, every_hook, settings)
                await runner.start()
            if on_ready is not None:
                on_ready()
            yield self
        finally:
            self.app.state.draining = True  # /healthz says so while the rest stops
            for task in list(self._tasks):
                task.cancel()
            if runner is not None:
                await runner.stop()
            if self.hub is not None:
                await self.hub.close()
            self.hub = None
            if store is not None:
                await store.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """`running()` for a host's ``lifespan=`` (FastAPI, Starlette); ``app`` is the host's."""
        async with self.running():
            yield

    async def revoke(self, subject: str, doc: str | None = None) -> None:
        """Re-check every open WebSocket of ``subject`` (on ``doc``, or on every document), in
        every process on the same Redis: each re-runs the authorize hook and, refused, is closed
        with 4403. Sockets of this process are re-checked when this returns; the others soon
        after. Raises StoreUnavailable when the other processes could not be told."""
        if self.hub is None:
            raise RuntimeError("revoke needs a running Tandem (inside `running()`)")
        await self._recheck(subject, doc)
        message = Revocation(subject=subject, doc=doc, sender=self.process_id)
        await self.hub.store.publish_control(msgspec.json.encode(message))

    async def _recheck(self, subject: str, doc: str | None) -> None:
        holders = list(self.gate.holders(subject, doc))
        await asyncio.gather(*(holder.recheck(revoked=True) for holder in holders))

    async def _on_control(self, data: bytes) -> None:
        try:
            message = _revocation_decoder.decode(data)
        except msgspec.DecodeError:
            log.debug("ignored a control message: %r", data[:200])
            return
        if message.sender != self.process_id:
            # in a task: the hook may be slow, and this is the process's only pub/sub reader
            self._spawn(self._recheck(message.subject, message.doc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
