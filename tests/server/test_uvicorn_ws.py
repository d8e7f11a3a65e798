"""The receive queue and writable flag of `tandem serve`'s WebSocket protocol (server/uvicorn_ws.py)."""

from __future__ import annotations

import asyncio

import pytest

from tandem.server.uvicorn_ws import PROTOCOL, Flag, ReceiveQueue
from tests.support import run


def test_the_queue_gives_items_in_order_and_waits_while_empty() -> None:
    async def scenario() -> list[int]:
        queue = ReceiveQueue()
        got: list[int] = []

        async def reader() -> None:
            for _ in range(4):
                got.append(await queue.get())

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)  # the reader waits on an empty queue
        assert got == [] and queue.empty()
        queue.put_nowait(1)
        queue.put_nowait(2)
        assert not queue.empty()
        await asyncio.sleep(0)
        queue.put_nowait(3)
        queue.put_nowait(4)
        await asyncio.wait_for(task, 5)
        assert queue.empty()
        return got

    assert run(scenario()) == [1, 2, 3, 4]


def test_the_queue_has_one_reader_and_a_cancelled_read_leaves_it_usable() -> None:
    async def scenario() -> str:
        queue = ReceiveQueue()
        first = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await queue.get()
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        queue.put_nowait("a")
        result: str = await asyncio.wait_for(queue.get(), 5)
        return result

    assert run(scenario()) == "a"


def test_the_flag_waits_until_set_and_one_cancelled_waiter_does_not_cancel_the_others() -> None:
    async def scenario() -> None:
        flag = Flag(True)
        assert flag.is_set() and await flag.wait()
        flag.clear()
        waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        waiters[0].cancel()
        await asyncio.sleep(0)
        assert not waiters[1].done()
        flag.set()
        assert await asyncio.wait_for(asyncio.gather(*waiters[1:]), 5) == [True, True]
        assert waiters[0].cancelled()

    run(scenario())


def test_the_installed_uvicorn_has_the_protocol() -> None:
    assert PROTOCOL is not None
