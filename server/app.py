"""create_app(settings): a Tandem of its own, served at the root (`tandem serve`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from tandem.server.embed import DEFAULT_WEB_DIR, Tandem
from tandem.server.settings import Settings

__all__ = ["DEFAULT_WEB_DIR", "create_app"]


def create_app(settings: Settings, on_ready: Callable[[], None] | None = None) -> Starlette:
    tandem = Tandem(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with tandem.running(on_ready=on_ready):
            yield

    # The same app a host mounts, given the lifespan a mounted app cannot have.
    tandem.app.router.lifespan_context = lifespan
    return tandem.app
