"""The accounting of a load or fault run: which acknowledged edits made it, once, into every replica.

Every insert is a unique token (with a non-BMP character, so positions must count code points) put
at a token boundary; a client deletes only whole tokens of its own. Concurrent edits then never
split a token, and the final text must be exactly the acknowledged, undeleted tokens, each once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TOKEN = re.compile(r"\[(\d+)\.(\d+)é😀\]")


def token(client: int, n: int) -> str:
    return f"[{client}.{n}é😀]"


def boundaries(text: str) -> list[int]:
    """Code point offsets where a token may be inserted without splitting another."""
    return [0, *(m.end() for m in TOKEN.finditer(text))]


@dataclass
class Ledger:
    """What one client was told is committed: tokens whose insert or delete was acknowledged."""

    inserted: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    submitted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Audit:
    lost: int  # acknowledged inserts missing, plus acknowledged deletes undone
    duplicated: int  # extra copies of a token
    diverged: int  # replicas whose text differs from the server's
    garbled: int  # code points that belong to no token, or tokens no client submitted
    details: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.diverged or self.garbled)


def audit(server_text: str, replicas: Mapping[str, str], ledgers: Iterable[Ledger], limit: int = 10) -> Audit:
    """Check `server_text` and every replica against what the clients were acknowledged."""
    inserted: set[str] = set()
    deleted: set[str] = set()
    submitted: set[str] = set()
    for ledger in ledgers:
        inserted |= ledger.inserted
        deleted |= ledger.deleted
        submitted |= ledger.submitted | ledger.inserted
    counts = Counter(m.group(0) for m in TOKEN.finditer(server_text))
    details: list[str] = []
    missing = sorted(t for t in inserted - deleted if counts[t] == 0)
    resurrected = sorted(t for t in deleted if counts[t] > 0)
    dupes = {t: n for t, n in counts.items() if n > 1}
    unknown = sorted(t for t in counts if t not in submitted)
    leftover = len(TOKEN.sub("", server_text))
    diverged = sorted(name for name, text in replicas.items() if text != server_text)
    if missing:
        details.append(f"{len(missing)} acknowledged inserts missing, e.g. {missing[:limit]}")
    if resurrected:
        details.append(f"{len(resurrected)} acknowledged deletes undone, e.g. {resurrected[:limit]}")
    if dupes:
        details.append(f"{len(dupes)} tokens more than once, e.g. {list(dupes.items())[:limit]}")
    if unknown:
        details.append(f"{len(unknown)} tokens nobody submitted, e.g. {unknown[:limit]}")
    if leftover:
        details.append(f"{leftover} code points outside any token")
    if diverged:
        details.append(f"{len(diverged)} replicas differ from the server, e.g. {diverged[:limit]}")
    return Audit(
        lost=len(missing) + len(resurrected),
        duplicated=sum(n - 1 for n in dupes.values()),
        diverged=len(diverged),
        garbled=leftover + len(unknown),
        details=tuple(details),
    )
