"""Process-wide counters and gauges, rendered in the Prometheus text format at /metrics."""

from __future__ import annotations

from collections import defaultdict

_HELP: dict[str, tuple[str, str]] = {
    "tandem_ops_committed_total": ("counter", "ops committed by this process"),
    "tandem_commits_total": ("counter", "commit calls to Redis (a group commit counts once)"),
    "tandem_commit_retries_total": ("counter", "commits retried after another process moved the head"),
    "tandem_duplicates_total": ("counter", "resubmitted ops acknowledged with their original revision"),
    "tandem_remote_ops_total": ("counter", "ops learned from other processes"),
    "tandem_gap_repairs_total": ("counter", "gaps in the notifications repaired from the log"),
    "tandem_errors_total": ("counter", "error messages sent, by code"),
    "tandem_frames_sent_total": ("counter", "WebSocket frames sent"),
    "tandem_messages_sent_total": ("counter", "messages sent (a batched frame carries several)"),
    "tandem_frames_received_total": ("counter", "WebSocket frames received"),
    "tandem_slow_receivers_total": ("counter", "connections closed because their send queue was full"),
    "tandem_connections": ("gauge", "open WebSocket connections"),
    "tandem_connections_refused_total": ("counter", "WebSocket connections refused at --max-connections"),
    "tandem_open_documents": ("gauge", "documents open in this process"),
}


class Metrics:
    def __init__(self) -> None:
        self.counts: defaultdict[tuple[str, str], float] = defaultdict(float)

    def inc(self, name: str, amount: float = 1, label: str = "") -> None:
        self.counts[(name, label)] += amount

    def set(self, name: str, value: float) -> None:
        self.counts[(name, "")] = value

    def get(self, name: str, label: str = "") -> float:
        return self.counts[(name, label)]

    def render(self) -> str:
        lines: list[str] = []
        for name, (kind, help_text) in _HELP.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            samples = sorted((label, v) for (n, label), v in self.counts.items() if n == name)
            if not samples:
                lines.append(f"{name} 0")
            for label, value in samples:
                labels = f'{{code="{label}"}}' if label else ""
                lines.append(f"{name}{labels} {value:g}")
        return "\n".join(lines) + "\n"
