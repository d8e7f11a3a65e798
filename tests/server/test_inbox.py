"""A document's inbox: everything queued, in order, to its one consumer."""

from __future__ import annotations

import asyncio

from tandem.server.inbox import Inbox
from tests.support import run


def test_take_all_waits_for_the_first_item_then_takes_everything_in_order() -> None:
    async def scenario() -> list[list[int]]:
        inbox: Inbox[int] = Inbox()
        taken: list[list[int]] = []

        async def consumer() -> None:
            for _ in range(2):
                taken.append(await inbox.take_all())

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)  # the consumer waits on an empty inbox
        assert taken == []
        inbox.put(1)
        inbox.put(2)  # both before the consumer runs again: one take
        await asyncio.sleep(0)
        inbox.put(3)
        await asyncio.wait_for(task, 5)
        return taken

    assert run(scenario()) == [[1, 2], [3]]


def test_drain_takes_what_is_left_without_waiting_and_a_cancelled_wait_leaves_it_usable() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        inbox: Inbox[str] = Inbox()
        waiting = asyncio.create_task(inbox.take_all())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        inbox.put("a")
        inbox.put("b")
        return inbox.drain(), inbox.drain()

    assert run(scenario()) == (["a", "b"], [])
