"""The benchmark harness's pure parts: medians, ratios, the table, the authors ladder, profile folding.

No timing here: speed is measured only by scripts/bench itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.bench import report, spy
from scripts.bench.workloads import authors_ladder, authors_pass


def run(server: str, name: str, **kw: Any) -> dict[str, Any]:
    return {"server": server, "name": name, "converged": True, **kw}


def test_format_and_ratio() -> None:
    assert report.fmt(3793.4) == "3,793"
    assert report.fmt(8.333) == "8.33"
    assert report.fmt(None) == "n/a"
    assert report.fmt_ratio(report.ratio(3.0, 2.0)) == "1.50x"
    assert report.ratio(1.0, 0) is None
    assert report.ratio(None, 2.0) is None


def test_summary_takes_medians_and_keeps_errors() -> None:
    records = [
        run("tandem", "hot8", edits_per_s=v, other_cpu_util=o)
        for v, o in ((100, 0.0), (300, 0.2), (200, 0.01))
    ]
    records.append({"server": "tandem", "name": "hot8", "error": "loadgen exited 2"})
    s = report.summarize(records)[("hot8", "tandem")]
    assert s["edits_per_s"] == 200
    assert s["other_cpu_util"] == 0.2
    assert s["runs"] == 4
    assert s["errors"] == ["loadgen exited 2"]


def test_targets_table_gives_verdicts() -> None:
    records = [
        run("sharedb", "hot32", edits_per_s=1000, lat_p99_ms=50.0),
        run("tandem", "hot32", edits_per_s=2500, lat_p99_ms=60.0),
        {"server": "sharedb", "name": "authors", "max_n": 150},
        {"server": "tandem", "name": "authors", "max_n": 200},
    ]
    lines = "\n".join(report.targets_table(records))
    assert "| hot, 32 clients x 200 edits: committed edits/s >= 2.0x | 2.50x | met |" in lines
    assert "| hot, 32 clients: ack p99 <= ShareDB's | 1.20x | **missed** |" in lines
    assert "1.33x (200 vs 150) | **missed** |" in lines
    assert "hot, 8 clients x 500 edits: committed edits/s >= 1.5x | n/a | n/a |" in lines


def test_render_has_a_row_per_workload() -> None:
    records = [
        run("sharedb", "hot8", edits_per_s=3793, lat_p50_ms=1.57, lat_p99_ms=8.33),
        run("tandem", "hot8", edits_per_s=5690, lat_p50_ms=1.2, lat_p99_ms=7.0),
    ]
    text = report.render(records, ["header"])
    row = next(line for line in text.splitlines() if line.startswith("| hot, 8 clients") and "3,793" in line)
    assert "| 3,793 | 5,690 | 1.50x (>= 1.5x: met) |" in row
    assert "1.57 / 1.2" in row


def test_sharedb_on_postgresql_is_a_column_next_to_in_memory_sharedb() -> None:
    records = [
        run("sharedb", "hot8", edits_per_s=3200, lat_p50_ms=1.5),
        run("tandem", "hot8", edits_per_s=4800, lat_p50_ms=1.2),
        run("sharedb-pg", "hot8", edits_per_s=480, lat_p50_ms=15.0),
    ]
    lines = report.workload_table(records)
    assert "| ShareDB edits/s | ShareDB on PostgreSQL edits/s | Tandem edits/s |" in lines[0]
    assert "| Tandem/ShareDB on PostgreSQL edits/s |" in lines[0]
    assert lines[1].count("|---") == lines[0].count(" | ") + 1
    # in-memory ShareDB stays the bar of the target; the durable one gets its own ratio
    assert "| 3,200 | 480 | 4,800 | 1.50x (>= 1.5x: met) | 10.00x | 1.5 / 15 / 1.2 |" in lines[2]
    assert report.durable_ratio(report.summarize(records[:2]), "hot8") is None
    assert "PostgreSQL" not in report.workload_table(records[:2])[0]


def test_authors_ladder_finds_the_largest_passing_n() -> None:
    limit = 230  # a server whose p95 crosses 100 ms above 230 authors
    seen: list[int] = []

    def step(n: int) -> dict[str, Any]:
        seen.append(n)
        return {"converged": True, "offered": n, "acked": n, "lat_p95_ms": 20.0 if n <= limit else 300.0}

    best, results = authors_ladder(step, start_n=100, step=50, fine=25)
    assert best == 225
    assert seen == [100, 150, 200, 250, 225]
    assert len(results) == 5


def test_authors_ladder_walks_down_when_the_first_step_fails() -> None:
    best, _ = authors_ladder(
        lambda n: {"converged": True, "offered": 1, "acked": 1, "lat_p95_ms": 10.0 if n <= 50 else 500.0},
        start_n=100,
    )
    assert best == 50


def test_a_step_with_lost_keystrokes_fails() -> None:
    assert not authors_pass({"converged": True, "offered": 10, "acked": 9, "lat_p95_ms": 1.0})
    assert not authors_pass({"converged": False, "offered": 10, "acked": 10, "lat_p95_ms": 1.0})
    assert authors_pass({"converged": True, "offered": 10, "acked": 10, "lat_p95_ms": 99.9})


def test_fold_counts_self_and_inclusive_samples() -> None:
    root = str(Path(__file__).resolve().parents[2])
    raw = (
        f"<module> (x.py:1);run (asyncio/base_events.py:10);_commit ({root}/server/document.py:200) 7\n"
        "<module> (x.py:1);run (asyncio/base_events.py:10) 3\n"
    )
    total, own, incl = spy.fold(raw)
    assert total == 10
    assert own["_commit (server/document.py)"] == 7
    assert incl["run (asyncio/base_events.py)"] == 10
    assert "| 70.0% | `_commit (server/document.py)` |" in spy.top_table(total, own)


def test_buckets_sort_samples_by_where_they_sit() -> None:
    raw = (
        "Session._write (server/session.py:1);WebSocket.send_text (starlette/websockets.py:2) 6\n"
        "Document._run (server/document.py:1);Submissions.commit (server/submit.py:2) 3\n"
        "Runner.run (asyncio/runners.py:118) 1\n"
    )
    shares = dict(spy.buckets(raw))
    assert shares["sending frames"] == 60.0
    assert shares["commit: plan, rebase, hash, Redis call, broadcast to queues"] == 30.0
    assert shares["event loop itself (uvloop: epoll, socket reads)"] == 10.0
