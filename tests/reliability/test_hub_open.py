"""A document whose opening fails (Redis down) must be gone before anyone else can join it."""

from __future__ import annotations

import asyncio

import pytest

from tandem.server.hub import Hub
from tandem.server.metrics import Metrics
from tandem.server.settings import Settings
from tandem.server.store.base import StoreUnavailable
from tandem.server.store.redis import RedisOpStore
from tests.support import free_port


def test_a_document_that_failed_to_open_cannot_be_joined() -> None:
    async def run() -> None:
        # A real connection refused: nothing listens on this port.
        hub = Hub(RedisOpStore(f"redis://127.0.0.1:{free_port()}/0"), Settings(), Metrics())
        first = asyncio.create_task(hub.acquire("doc"))
        await asyncio.sleep(0)
        opening = hub._opening["doc"]
        seen_when_failed: list[bool] = []
        # Runs the moment opening fails, before the first waiter wakes: a session arriving now
        # must not find the document.
        opening.add_done_callback(lambda _: seen_when_failed.append("doc" in hub.docs))
        with pytest.raises(StoreUnavailable):
            await first
        assert seen_when_failed == [False]
        assert "doc" not in hub.docs
        await hub.store.close()

    asyncio.run(run())
