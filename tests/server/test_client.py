"""The Python client driver against a real server: editing, callbacks, reconnect and resume."""

from __future__ import annotations

import asyncio
import random

from tandem.ot.operation import Operation
from tandem.server.client import TandemClient
from tests.support import RedisProcess, ServerProcess, document, run


def test_two_clients_edit_and_converge(tandem: ServerProcess, doc: str) -> None:
    url = f"{tandem.ws_url}/ws/{doc}"
    seen: list[tuple[Operation, str]] = []

    async def scenario() -> None:
        async with (
            TandemClient(url, "one", on_change=lambda op, text: seen.append((op, text))) as one,
            TandemClient(url, "two") as two,
        ):
            one.insert(0, "hello world")
            await one.synced()
            await two.wait_for(lambda c: c.text == "hello world")
            two.replace(0, 5, "HELLO")
            two.delete(5, 6)
            two.insert(5, "!")
            await two.synced()
            await one.wait_for(lambda c: c.text == "HELLO!")

    run(scenario())
    assert seen and seen[-1][1] == "HELLO!"
    assert document(tandem.http_url, doc)["text"] == "HELLO!"


def test_concurrent_random_edits_converge(tandem: ServerProcess, doc: str) -> None:
    url = f"{tandem.ws_url}/ws/{doc}"

    async def typist(client: TandemClient, rng: random.Random) -> None:
        for _ in range(25):
            n = len(client.text)
            if n and rng.random() < 0.3:
                start = rng.randrange(n)
                client.delete(start, min(rng.randint(1, 3), n - start))
            else:
                client.insert(rng.randint(0, n), rng.choice(["a", "bc", "😀", "é"]))
            await asyncio.sleep(rng.random() * 0.005)

    async def scenario() -> list[str]:
        clients = [await TandemClient(url, f"r{i}").connect() for i in range(3)]
        try:
            await asyncio.gather(*(typist(c, random.Random(i)) for i, c in enumerate(clients)))
            for c in clients:
                await c.synced()
            head = max(c.rev or 0 for c in clients)
            for c in clients:
                await c.wait_for(lambda c: c.rev == head)
            return [c.text for c in clients]
        finally:
            for c in clients:
                await c.close()

    texts = run(scenario(), timeout=60)
    assert texts[0] == texts[1] == texts[2] == document(tandem.http_url, doc)["text"]


def test_the_client_resumes_and_resends_after_the_server_restarts(
    redis: RedisProcess, tmp_path: object, doc: str
) -> None:
    server = ServerProcess(redis.url, tmp_path, extra_args=("--log-level", "warning"))  # type: ignore[arg-type]
    server.start()
    url = f"{server.ws_url}/ws/{doc}"

    async def scenario() -> tuple[str, str, int]:
        async with TandemClient(url, "writer") as writer, TandemClient(url, "reader") as reader:
            writer.insert(0, "before ")
            await writer.synced()
            await asyncio.to_thread(server.kill)
            writer.insert(7, "after")  # made while the server is down
            await asyncio.to_thread(server.start)
            await writer.synced(timeout=20)
            await reader.wait_for(lambda c: c.text == "before after", timeout=20)
            return writer.text, reader.text, writer.connections

    try:
        written, read, connections = run(scenario(), timeout=60)
    finally:
        server.stop()
    assert written == read == "before after"
    assert connections >= 2


def test_the_bot_script_types_its_text(tandem: ServerProcess, doc: str) -> None:
    import subprocess
    import sys
    from pathlib import Path

    bot = Path(__file__).resolve().parents[2] / "scripts" / "bot.py"
    result = subprocess.run(
        [
            sys.executable,
            str(bot),
            "--url",
            f"{tandem.ws_url}/ws/{doc}",
            "--text",
            "beep",
            "--delay",
            "0",
            "--append",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert document(tandem.http_url, doc)["text"] == "beep"
