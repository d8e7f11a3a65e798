"""Process helpers for the benchmark: ports, process trees, CPU seconds and resident memory from /proc."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name, which may itself contain spaces and parentheses
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren, ... (e.g. the embedded redis-server of `tandem serve`)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parent_of[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parent_of.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (exited ones count as 0)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _reaped_children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuWatch:
    """Measures, over a span, the CPU used by everything except the watched processes, this harness
    and its children that exited and were waited for in the span (e.g. a finished loadgen)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.own0 = cpu_seconds(self.pids) + cpu_seconds([os.getpid()]) + _reaped_children_cpu()

    def other_util(self) -> float:
        """Cores used by the rest of the machine since the start (about 0 on a quiet machine)."""
        wall = max(time.monotonic() - self.t0, 1e-6)
        own = cpu_seconds(self.pids) + cpu_seconds([os.getpid()]) + _reaped_children_cpu()
        other = (machine_busy_seconds() - self.busy0) - (own - self.own0)
        return round(max(0.0, other) / wall, 3)


def idle_other_cpu(seconds: float = 2.0) -> float:
    """Cores the rest of the machine uses while this process sleeps: the noise floor of a run."""
    watch = CpuWatch([])
    time.sleep(seconds)
    return watch.other_util()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group this harness started (session leader = proc), SIGKILL after grace."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind
    except ProcessLookupError:
        pass
    proc.wait()
