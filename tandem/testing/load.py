"""A load run: N editing clients on D documents, optional faults, then the audit.

Each client inserts unique tokens at token boundaries of its own replica and deletes whole tokens of
its own that were acknowledged, so that the final text can be checked token by token (audit.py).
An edit counts as acknowledged when the op that carried it is acknowledged; the ack latency of an
edit runs from the local edit to that ack. When time or count is up the clients stop editing, wait
until everything they sent is acknowledged, and the replicas are compared with the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tandem.testing.audit import Audit, Ledger, audit, boundaries, token
from tandem.testing.bot import Bot
from tandem.testing.proxy import Balancer

Progress = Callable[["Counters"], None]
Fault = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 32
    docs: int = 4
    duration: float = 30.0
    max_edits: int = 0  # per client; 0: bounded by time only
    rate: float = 10.0  # edits per second per client
    delete_share: float = 0.2
    seed: int = 1
    cut_every: float = 0.0  # cut a random client's connection this often (0: never)
    drain_timeout: float = 60.0


@dataclass
class Counters:
    started: float = field(default_factory=time.monotonic)
    edits: int = 0
    acked: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


@dataclass(frozen=True)
class LoadReport:
    config: LoadConfig
    seconds: float
    edits: int
    acked: int
    unconfirmed: int  # edits never acknowledged by the end of the drain
    refused: int  # edits the server refused for good (the workload makes only valid ones)
    latency_ms: dict[str, float]
    faults: dict[str, int]
    audit: Audit
    troubles: dict[str, int]  # server errors and lost-edit reasons the clients met, by kind

    @property
    def edits_per_second(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> bool:
        return not self.audit.ok or self.refused > 0 or self.unconfirmed > 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Editor:
    """One client of the workload: its bot (the connection), its ledger and its pending edits."""

    def __init__(
        self, index: int, doc: str, url: str, rng: random.Random, counters: Counters, delete_share: float
    ) -> None:
        self.index = index
        self.delete_share = delete_share
        self.doc = doc
        self.rng = rng
        self.counters = counters
        self.ledger = Ledger()
        self.made = 0
        self.refused = 0
        # seq of the op carrying an edit -> [(token, is_delete, time of the edit)]
        self.pending: dict[int, list[tuple[str, bool, float]]] = {}
        self.bot = Bot(f"load-{index}", f"{url}/ws/{doc}", on_ack=self._acked, on_lost=self._lost)

    def edit_once(self) -> bool:
        text = self.bot.text
        if text is None:
            return False
        mine = sorted(self.ledger.inserted - self.ledger.deleted - self._deleting())
        if mine and self.rng.random() < self.delete_share:
            victim = self.rng.choice(mine)
            at = text.find(victim)
            if at < 0:
                return False
            seq = self.bot.delete(at, len(victim))
            self._record(seq, victim, True)
        else:
            self.made += 1
            new = token(self.index, self.made)
            seq = self.bot.insert(self.rng.choice(boundaries(text)), new)
            self.ledger.submitted.add(new)
            self._record(seq, new, False)
        self.counters.edits += 1
        return True

    def _deleting(self) -> set[str]:
        return {t for edits in self.pending.values() for t, is_delete, _ in edits if is_delete}

    def _record(self, seq: int, tok: str, is_delete: bool) -> None:
        self.pending.setdefault(seq, []).append((tok, is_delete, time.monotonic()))

    def _acked(self, seq: int) -> None:
        now = time.monotonic()
        for done in [s for s in self.pending if s <= seq]:
            for tok, is_delete, at in self.pending.pop(done):
                (self.ledger.deleted if is_delete else self.ledger.inserted).add(tok)
                self.counters.acked += 1
                self.counters.latencies.append(now - at)

    def _lost(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.refused += len(self.pending.pop(seq, []))


async def run_load(
    config: LoadConfig,
    ws_urls: list[str],
    http_text: Callable[[str], Awaitable[str]],
    faults: dict[str, tuple[float, Fault]] | None = None,
    progress: Progress | None = None,
) -> LoadReport:
    """Run the workload against the servers at `ws_urls`; `http_text(doc)` reads a server's text.

    The clients reach the servers through a round-robin balancer (proxy.py), which is also where
    connections are cut. `faults` maps a name to (period in seconds, an async action).
    """
    rng = random.Random(config.seed)
    counters = Counters()
    balancer = Balancer([_host_port(u) for u in ws_urls])
    await balancer.start()
    docs = [f"load-{config.seed}-{d}" for d in range(config.docs)]
    editors = [
        Editor(
            i,
            docs[i % len(docs)],
            balancer.ws_url,
            random.Random(rng.random()),
            counters,
            config.delete_share,
        )
        for i in range(config.clients)
    ]
    deadline = time.monotonic() + config.duration
    background = [
        asyncio.create_task(_every(period, name, action, counters, deadline))
        for name, (period, action) in (faults or {}).items()
    ]
    if config.cut_every > 0:
        background.append(
            asyncio.create_task(
                _every(config.cut_every, "connection cut", _cutter(balancer, rng), counters, deadline)
            )
        )
    try:
        await asyncio.gather(*(e.bot.run() for e in editors))
        await asyncio.gather(*(_type(e, config, deadline, progress) for e in editors))
        # Faults end by themselves at the deadline: cancelling one could leave a process down.
        await asyncio.gather(*background)
        seconds = time.monotonic() - counters.started
        stuck = await _drain(editors, config.drain_timeout)
        server_texts = {doc: await http_text(doc) for doc in docs}
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*(e.bot.stop() for e in editors), *background, return_exceptions=True)
        await balancer.close()
    results = []
    for doc in docs:
        mine = [e for e in editors if e.doc == doc]
        results.append(
            audit(
                server_texts[doc],
                {f"load-{e.index}": e.bot.text or "" for e in mine},
                [e.ledger for e in mine],
            )
        )
    lat = [x * 1000 for x in counters.latencies]
    return LoadReport(
        config=config,
        seconds=seconds,
        edits=counters.edits,
        acked=counters.acked,
        unconfirmed=sum(len(v) for e in editors for v in e.pending.values()),
        refused=sum(e.refused for e in editors),
        latency_ms={"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99)},
        faults=counters.faults,
        troubles=dict(Counter([t for e in editors for t in e.bot.troubles()] + stuck)),
        audit=Audit(
            lost=sum(r.lost for r in results),
            duplicated=sum(r.duplicated for r in results),
            diverged=sum(r.diverged for r in results),
            garbled=sum(r.garbled for r in results),
            details=tuple(f"{doc}: {d}" for doc, r in zip(docs, results, strict=True) for d in r.details),
        ),
    )


def _host_port(ws_url: str) -> tuple[str, int]:
    host, _, port = ws_url.removeprefix("ws://").rstrip("/").rpartition(":")
    return host, int(port)


async def _type(editor: Editor, config: LoadConfig, deadline: float, progress: Progress | None) -> None:
    interval = 1.0 / config.rate
    await asyncio.sleep(editor.rng.random() * interval)
    while time.monotonic() < deadline and not (config.max_edits and editor.made >= config.max_edits):
        editor.edit_once()
        if progress is not None and editor.index == 0:
            progress(editor.counters)
        await asyncio.sleep(interval * (0.5 + editor.rng.random()))


async def _every(period: float, name: str, action: Fault, counters: Counters, deadline: float) -> None:
    while time.monotonic() + period < deadline:
        await asyncio.sleep(period)
        if await action():  # an empty answer: nothing was there to break
            counters.fault(name)


def _cutter(balancer: Balancer, rng: random.Random) -> Fault:
    async def cut() -> str:
        return "cut" if balancer.cut(rng) else ""

    return cut


async def _drain(editors: list[Editor], timeout: float) -> list[str]:
    """Wait until every edit is acknowledged and every replica is at its document's head;
    the states of the clients that did not get there in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(e.pending for e in editors):
        await asyncio.sleep(0.05)
    # Replicas converge once the last broadcasts arrive: wait until all of a document agree.
    while time.monotonic() < deadline:
        by_doc: dict[str, set[int | None]] = {}
        for e in editors:
            by_doc.setdefault(e.doc, set()).add(e.bot.rev)
        if all(len(revs) == 1 for revs in by_doc.values()):
            break
        await asyncio.sleep(0.05)
    return [f"unsettled {e.bot.describe()}" for e in editors if e.pending]
