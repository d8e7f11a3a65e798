"""One editing client of a load run: the Python driver (server/client.py) plus what the audit needs.

It tells which op (seq) carries each local edit, so that the driver's acknowledgments can be
mapped back to edits, and which edits the session gave up on.
"""

from __future__ import annotations

from collections.abc import Callable

from tandem.ot.client import Synchronized
from tandem.ot.effects import Lost
from tandem.server.client import TandemClient


class Bot:
    def __init__(
        self, client_id: str, url: str, *, on_ack: Callable[[int], None], on_lost: Callable[[list[int]], None]
    ) -> None:
        self.on_lost = on_lost
        self.lost_reasons: list[str] = []
        self.client = TandemClient(
            url, client_id, on_ack=lambda seq, rev: on_ack(seq), on_lost=self._lost, max_backoff=1.0
        )

    @property
    def text(self) -> str | None:
        return self.client.text if self.client.rev is not None else None

    @property
    def rev(self) -> int | None:
        return self.client.rev

    def insert(self, at: int, content: str) -> int:
        """Insert locally (sent when the connection allows); the seq of the op that will carry it."""
        return self._seq_of(lambda: self.client.insert(at, content))

    def delete(self, at: int, length: int) -> int:
        return self._seq_of(lambda: self.client.delete(at, length))

    def _seq_of(self, edit: Callable[[], None]) -> int:
        session = self.client.session
        starts_op = isinstance(session.state, Synchronized)
        edit()
        # A first edit goes out as its own op; later ones wait in the buffer for the next seq.
        return session.next_seq - 1 if starts_op else session.next_seq

    def _lost(self, lost: Lost) -> None:
        # The op in flight (seq next_seq - 1) is lost unless still pending; the buffer was next_seq.
        session = self.client.session
        self.lost_reasons.append(lost.reason)
        still = session.outstanding
        self.on_lost([s for s in (session.next_seq - 1, session.next_seq) if still is None or s != still.seq])

    def troubles(self) -> list[str]:
        """What went wrong for this client: server errors by code, and why edits were lost."""
        found = [f"error {e.code}" for e in self.client.errors] + [f"lost: {r}" for r in self.lost_reasons]
        runner = self.client._runner  # the driver's connection task: it must never end by itself
        if runner is not None and runner.done() and not runner.cancelled() and runner.exception():
            found.append(f"driver stopped: {runner.exception()!r}")
        return found

    def describe(self) -> str:
        """The driver's state in a line, for a client that did not settle."""
        s = self.client.session
        return (
            f"{s.client_id}: phase {s.phase}, {type(s.state).__name__}, rev {s.rev}, "
            f"next seq {s.next_seq}, connections {self.client.connections}, "
            f"connected {self.client._ws is not None}"
        )

    async def run(self) -> None:
        await self.client.connect(timeout=30)

    async def stop(self) -> None:
        await self.client.close()
