"""A TCP load balancer for tests: round robin over server processes, and connections cut on demand.

Clients connect to one address, as they would behind a real balancer; a connection goes to the next
backend that accepts it, so a client whose process died lands on another one when it reconnects.
`cut()` drops a live connection on both sides at once, wherever its bytes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading


class Balancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.port = 0
        self.cuts = 0
        self._turn = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self, rng: random.Random) -> bool:
        """Drop one live connection chosen by `rng`; False when there is none."""
        if not self._links:
            return False
        self._drop(rng.choice(sorted(self._links, key=id)))
        self.cuts += 1
        return True

    def _drop(self, link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._links.discard(link)
        for writer in link:
            writer.transport.abort()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter] | None = None
        try:
            for _ in range(len(self.backends)):
                host, port = self.backends[self._turn % len(self.backends)]
                self._turn += 1
                try:
                    server_r, server_w = await asyncio.open_connection(host, port)
                    break
                except OSError:
                    continue
            else:
                return
            link = (client_w, server_w)
            self._links.add(link)
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            # also when cancelled at the loop's end: a socket left open is a ResourceWarning
            if link is None:
                client_w.transport.abort()
            else:
                self._drop(link)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


class ReplyCutter:
    """A TCP forwarder to one backend (Redis) that drops a connection the first time a reply
    containing ``marker`` comes back on it, before the reply reaches the caller: the command ran,
    its answer is lost. Runs its own event loop in a thread, so blocking tests can use it."""

    def __init__(self, backend_port: int, marker: bytes) -> None:
        self.backend_port = backend_port
        self.marker = marker
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(ready),), daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the reply cutter did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stop.wait()
        # connections still forwarding end with the proxy
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            client_w.transport.abort()
            return
        except asyncio.CancelledError:
            client_w.transport.abort()
            raise

        async def down() -> None:
            while data := await server_r.read(65536):
                if self.cuts == 0 and self.marker in data:
                    self.cuts += 1
                    break
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(Balancer._pipe(client_r, server_w)), asyncio.ensure_future(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when cancelled as the cutter closes
            client_w.transport.abort()
            server_w.transport.abort()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
