"""Shutting down behind a load balancer: say so on /healthz before the sockets close."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger("tandem")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, marking the app draining (/healthz answers 503) as soon as a shutdown is
    asked for. On SIGTERM it first keeps serving for ``drain_seconds``, so load balancers see the
    503 and stop sending clients here; Ctrl-C or a second signal shuts down at once."""

    def __init__(self, config: uvicorn.Config, app: Starlette, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.draining = True
        if sig == signal.SIGTERM and self.drain_seconds > 0 and self.drain_until is None:
            self.drain_until = time.monotonic() + self.drain_seconds
            log.info("draining for %g s: /healthz answers 503, connections stay open", self.drain_seconds)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        # uvicorn calls this every 0.1 s; past the drain, its graceful shutdown as on SIGTERM
        if self.drain_until is not None and not self.should_exit and time.monotonic() >= self.drain_until:
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)
