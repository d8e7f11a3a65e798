"""create_app(settings): routes and lifespan, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from tandem.server import http
from tandem.server.auth import origin_allowed
from tandem.server.hub import Hub
from tandem.server.metrics import Metrics
from tandem.server.redis_process import RedisProcess
from tandem.server.session import Session
from tandem.server.settings import Settings
from tandem.server.store.base import StoreUnavailable
from tandem.server.store.redis import RedisOpStore

log = logging.getLogger("tandem")

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, on_ready: Callable[[], None] | None = None) -> Starlette:
    metrics = Metrics()
    web_dir = settings.web_dir or DEFAULT_WEB_DIR

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        embedded: RedisProcess | None = None
        url = settings.redis_url
        if url is None:
            embedded = RedisProcess(settings.data_dir, fsync=settings.fsync)
            await asyncio.to_thread(embedded.start)
            url = embedded.url
            log.info("embedded redis-server on %s, data in %s", url, embedded.data_dir)
        store = RedisOpStore(
            url,
            log_retention=settings.log_retention,
            cluster=settings.redis_cluster,
            timeout=settings.redis_timeout,
            max_connections=settings.redis_max_connections,
        )
        hub = Hub(store, settings, metrics)
        app.state.hub = hub
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.redis_url = url
        hub.start()
        if on_ready is not None:
            on_ready()
        try:
            yield {}
        finally:
            await hub.close()
            await store.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    async def websocket_endpoint(websocket: WebSocket) -> None:
        if not origin_allowed(settings.allowed_origins, websocket.headers.get("origin")):
            await websocket.close(code=4403, reason="origin not allowed")
            return
        if metrics.get("tandem_connections") >= settings.max_connections:
            # refused with a code the clients retry on, before the process runs out of descriptors
            metrics.inc("tandem_connections_refused_total")
            await websocket.accept()
            await websocket.close(code=1013, reason="too many connections; try again later")
            return
        app: Starlette = websocket.app
        await Session(websocket, app.state.hub, settings, metrics).run()

    routes: list[Any] = [
        Route("/", http.homepage_for(web_dir)),  # type: ignore[arg-type]
        Route("/healthz", http.healthz),
        Route("/metrics", http.metrics),
        Route("/docs/{doc}", http.get_doc),
        Route("/docs/{doc}/ops", http.get_ops, methods=["GET"]),
        Route("/docs/{doc}/ops", http.post_op, methods=["POST"]),
        Route("/docs/{doc}/verify", http.verify),
        WebSocketRoute("/ws/{doc}", websocket_endpoint),
    ]
    if web_dir.is_dir():
        routes.append(Mount("/web", app=StaticFiles(directory=web_dir), name="web"))
    unavailable: Any = http.store_unavailable
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={StoreUnavailable: unavailable})
