"""Process-wide counters, gauges and a histogram, rendered in the Prometheus text format at /metrics.

Names follow the Prometheus conventions: base units (`_seconds`), counters end in `_total`,
gauges do not. `inc` runs for every frame sent, so it is one dict update; the text is built
only when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import NamedTuple

from tandem.ot.protocol import ErrorCode


class Family(NamedTuple):
    kind: str  # counter, gauge or histogram
    help: str
    label: str = ""  # the one label name of the family, if it has one
    known: tuple[str, ...] = ()  # label values shown at 0 before they happen, so rate() sees them


FAMILIES: dict[str, Family] = {
    "tandem_connections": Family("gauge", "open WebSocket connections"),
    "tandem_connections_refused_total": Family(
        "counter", "WebSocket connections refused at --max-connections"
    ),
    "tandem_open_documents": Family("gauge", "documents open in this process"),
    "tandem_redis_up": Family("gauge", "1 if Redis answered a ping when scraped, else 0"),
    "tandem_commits_total": Family("counter", "commit calls to Redis (a group commit counts once)"),
    "tandem_ops_committed_total": Family("counter", "ops committed by this process"),
    "tandem_commit_duration_seconds": Family(
        "histogram", "time from a group's commit start to its ops being committed, retries included"
    ),
    "tandem_commit_retries_total": Family("counter", "commits retried after another process moved the head"),
    "tandem_duplicates_total": Family("counter", "resubmitted ops acknowledged with their original revision"),
    "tandem_remote_ops_total": Family("counter", "ops learned from other processes"),
    "tandem_gap_repairs_total": Family("counter", "gaps in the notifications repaired from the log"),
    "tandem_errors_total": Family("counter", "error messages sent, by code", "code", tuple(ErrorCode)),
    "tandem_frames_sent_total": Family("counter", "WebSocket frames sent"),
    "tandem_messages_sent_total": Family("counter", "messages sent (a batched frame carries several)"),
    "tandem_frames_received_total": Family("counter", "WebSocket frames received"),
    "tandem_slow_receivers_total": Family("counter", "connections closed because their send queue was full"),
}

# Seconds: a local Redis commits in well under a millisecond, a distant or loaded one in tens of
# them; a commit slower than 5 s has met the default --redis-timeout.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le` is inclusive
        self.sum += value


class Metrics:
    def __init__(self) -> None:
        self.counts: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.histograms = {
            name: Histogram(COMMIT_BUCKETS) for name, f in FAMILIES.items() if f.kind == "histogram"
        }

    def inc(self, name: str, amount: float = 1, label: str = "") -> None:
        self.counts[(name, label)] += amount

    def set(self, name: str, value: float, label: str = "") -> None:
        self.counts[(name, label)] = value

    def get(self, name: str, label: str = "") -> float:
        return self.counts.get((name, label), 0.0)

    def observe(self, name: str, value: float) -> None:
        self.histograms[name].observe(value)

    def render(self) -> str:
        lines: list[str] = []
        for name, family in FAMILIES.items():
            lines.append(f"# HELP {name} {family.help}")
            lines.append(f"# TYPE {name} {family.kind}")
            if family.kind == "histogram":
                _render_histogram(lines, name, self.histograms[name])
                continue
            samples = {label: v for (n, label), v in self.counts.items() if n == name}
            for label in family.known:
                samples.setdefault(label, 0.0)
            if not samples:
                samples[""] = 0.0
            for label, value in sorted(samples.items()):
                labels = f'{{{family.label}="{_escape(label)}"}}' if label else ""
                lines.append(f"{name}{labels} {_number(value)}")
        return "\n".join(lines) + "\n"


def _render_histogram(lines: list[str], name: str, h: Histogram) -> None:
    cumulative = 0
    for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
        cumulative += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    lines.append(f"{name}_sum {_number(h.sum)}")
    lines.append(f"{name}_count {cumulative}")


def _number(value: float) -> str:
    # whole numbers as integers; `:g` would round a large counter to six digits
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
