"""The results table: medians over repetitions, Tandem/ShareDB ratios and the targets of the comparison.

Pure functions of the result records (one dict per run, as written to the .jsonl file), so the
table of any earlier run can be printed again: `scripts/bench/run --report FILE.jsonl`.
"""

from __future__ import annotations

import statistics
from typing import Any

Result = dict[str, Any]

LABELS = {
    "hot8": "hot, 8 clients x 500 edits",
    "hot32": "hot, 32 clients x 200 edits",
    "many": "many, 50 docs x 2 clients x 100 edits",
    "join20k": "join, 20,000 edits of history (20,000-char doc)",
    "join200k": "join, 200,000 edits of history (~20,000-char doc)",
}
SERVER_NAMES = {
    "sharedb": "ShareDB",
    "sharedb-pg": "ShareDB on PostgreSQL",
    "otjs": "ot.js",
    "tandem": "Tandem",
}
# ShareDB as deployed (durable): shown next to in-memory ShareDB, which stays the bar of the targets
DURABLE = "sharedb-pg"
# workload -> minimum Tandem/ShareDB ratio of committed edits/s
THROUGHPUT_TARGETS = {"hot8": 1.5, "hot32": 2.0, "many": 1.5}
AUTHORS_TARGET = 1.5
TRANSFORM_TARGET = 0.25
JOIN_FLAT_FACTOR = 1.5  # join at 200k history within this factor of the join at 20k
NUMERIC = (
    "edits_per_s",
    "lat_p50_ms",
    "lat_p95_ms",
    "lat_p99_ms",
    "server_cpu_util",
    "loadgen_cpu_util",
    "join_ms_median",
    "cold_join_ms_median",
    "join_empty_ms_median",
    "prefill_edits_per_s",
    "doc_length",
)


def median(xs: list[Any]) -> float | None:
    vals = [float(x) for x in xs if isinstance(x, int | float)]
    return statistics.median(vals) if vals else None


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt(x: float | None) -> str:
    """Thousands separators for big numbers, 3 significant digits for small ones."""
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{round(x):,}"
    return f"{x:.3g}"


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def summarize(records: list[Result]) -> dict[tuple[str, str], Result]:
    """(workload, server) -> medians over repetitions, with the worst noise and all errors kept."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in records:
        if r.get("name") in LABELS:
            groups.setdefault((r["name"], r["server"]), []).append(r)
    out: dict[tuple[str, str], Result] = {}
    for key, runs in groups.items():
        ok = [r for r in runs if not r.get("error")]
        s: Result = {k: median([r.get(k) for r in ok]) for k in NUMERIC}
        s["runs"] = len(runs)
        s["errors"] = [r["error"] for r in runs if r.get("error")]
        s["converged"] = all(r.get("converged", True) is True for r in ok) if ok else None
        others = [float(r["other_cpu_util"]) for r in runs if r.get("other_cpu_util") is not None]
        s["other_cpu_util"] = max(others) if others else None
        out[key] = s
    return out


def _servers(records: list[Result]) -> list[str]:
    present = {r["server"] for r in records if "server" in r}
    return [s for s in SERVER_NAMES if s in present]


def _pair(s: dict[tuple[str, str], Result], name: str, metric: str) -> tuple[float | None, float | None]:
    return s.get((name, "tandem"), {}).get(metric), s.get((name, "sharedb"), {}).get(metric)


def durable_ratio(s: dict[tuple[str, str], Result], name: str) -> float | None:
    """Tandem's committed edits/s over those of ShareDB on PostgreSQL (ShareDB as deployed)."""
    return ratio(
        s.get((name, "tandem"), {}).get("edits_per_s"), s.get((name, DURABLE), {}).get("edits_per_s")
    )


def workload_table(records: list[Result]) -> list[str]:
    s = summarize(records)
    servers = _servers(records)
    names = [n for n in ("hot8", "hot32", "many") if any((n, sv) in s for sv in servers)]
    if not names:
        return []
    heads = [f"{SERVER_NAMES[sv]} edits/s" for sv in servers]
    durable = DURABLE in servers
    lines = [
        "| workload | "
        + " | ".join(heads)
        + " | Tandem/ShareDB edits/s (target)"
        + (f" | Tandem/{SERVER_NAMES[DURABLE]} edits/s" if durable else "")
        + " | ack p50 ms "
        + " / ".join(SERVER_NAMES[sv] for sv in servers)
        + " | ack p99 ms "
        + " / ".join(SERVER_NAMES[sv] for sv in servers)
        + " | p50, p99 Tandem/ShareDB | server CPU "
        + " / ".join(SERVER_NAMES[sv] for sv in servers)
        + " | loadgen CPU | other CPU (max) | converged |",
        "|---" * (len(servers) + 9 + durable) + "|",
    ]
    for n in names:
        row = [s.get((n, sv), {}) for sv in servers]
        t, d = _pair(s, n, "edits_per_s")
        r = ratio(t, d)
        target = THROUGHPUT_TARGETS.get(n)
        goal = (
            f"{fmt_ratio(r)} (>= {target}x: {verdict(None if r is None else r >= target)})"
            if target
            else fmt_ratio(r)
        )
        p50 = ratio(*_pair(s, n, "lat_p50_ms"))
        p99 = ratio(*_pair(s, n, "lat_p99_ms"))
        p99_note = f"{fmt_ratio(p50)}, {fmt_ratio(p99)}"
        if n == "hot32" and p99 is not None:
            p99_note += f" (p99 <= 1x: {verdict(p99 <= 1.0)})"
        errors = [e for x in row for e in x.get("errors", [])]
        lines.append(
            f"| {LABELS[n]} | "
            + " | ".join(fmt(x.get("edits_per_s")) for x in row)
            + f" | {goal} | "
            + (f"{fmt_ratio(durable_ratio(s, n))} | " if durable else "")
            + " / ".join(fmt(x.get("lat_p50_ms")) for x in row)
            + " | "
            + " / ".join(fmt(x.get("lat_p99_ms")) for x in row)
            + f" | {p99_note} | "
            + " / ".join(fmt(x.get("server_cpu_util")) for x in row)
            + " | "
            + " / ".join(fmt(x.get("loadgen_cpu_util")) for x in row)
            + " | "
            + " / ".join(fmt(x.get("other_cpu_util")) for x in row)
            + " | "
            + " / ".join(str(x.get("converged")) for x in row)
            + (f" errors: {'; '.join(errors)[:200]}" if errors else "")
            + " |"
        )
    return lines


def join_table(records: list[Result]) -> list[str]:
    s = summarize(records)
    servers = _servers(records)
    names = [n for n in ("join20k", "join200k") if any((n, sv) in s for sv in servers)]
    if not names:
        return []
    lines = [
        "| join | "
        + " | ".join(f"{SERVER_NAMES[sv]} ms" for sv in servers)
        + " | Tandem/ShareDB | Tandem cold join ms (fresh process, from Redis) | empty-doc join ms "
        "| doc length | prefill edits/s |",
        "|---" * (len(servers) + 6) + "|",
    ]
    for n in names:
        row = [s.get((n, sv), {}) for sv in servers]
        cells = [
            LABELS[n],
            *(fmt(x.get("join_ms_median")) for x in row),
            fmt_ratio(ratio(*_pair(s, n, "join_ms_median"))),
            fmt(s.get((n, "tandem"), {}).get("cold_join_ms_median")),
            " / ".join(fmt(x.get("join_empty_ms_median")) for x in row),
            " / ".join(fmt(x.get("doc_length")) for x in row),
            " / ".join(fmt(x.get("prefill_edits_per_s")) for x in row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def authors_table(records: list[Result]) -> list[str]:
    ladders = [r for r in records if r.get("name") == "authors" and "steps" in r]
    if not ladders:
        return []
    lines = [
        "| server | largest N with p95 < 100 ms | steps: N (p95 ms, loadgen CPU, server CPU) |",
        "|---|---|---|",
    ]
    for r in ladders:
        steps = ", ".join(
            f"{x.get('n')} ({fmt(x.get('lat_p95_ms'))}, {fmt(x.get('loadgen_cpu_util'))}, "
            f"{fmt(x.get('server_cpu_util'))}){'' if x.get('passed') else ' fail'}"
            for x in r.get("steps", [])
        )
        lines.append(f"| {SERVER_NAMES.get(r['server'], r['server'])} | {r.get('max_n')} | {steps} |")
    return lines


def transform_rates(rec: Result) -> tuple[float | None, float | None]:
    """(ot.js transform pairs/s, Tandem transform pairs/s) from a transform record."""
    js = (rec.get("js") or {}).get("ops_per_s") or {}
    py: Result = rec.get("py") or {}
    rates: Result = py["ops_per_s"] if isinstance(py.get("ops_per_s"), dict) else py
    tandem = None
    for key in ("transform", "transform_ops_per_s", "transform_pairs_per_s"):
        if isinstance(rates.get(key), int | float):
            tandem = float(rates[key])
            break
    return js.get("ot.js.transform"), tandem


def targets_table(records: list[Result]) -> list[str]:
    """One line per target of the comparison: measured ratio and whether it is met."""
    s = summarize(records)
    rows: list[tuple[str, str, bool | None]] = []
    for n, target in THROUGHPUT_TARGETS.items():
        r = ratio(*_pair(s, n, "edits_per_s"))
        rows.append(
            (f"{LABELS[n]}: committed edits/s >= {target}x", fmt_ratio(r), None if r is None else r >= target)
        )
    p99 = ratio(*_pair(s, "hot32", "lat_p99_ms"))
    rows.append(
        ("hot, 32 clients: ack p99 <= ShareDB's", fmt_ratio(p99), None if p99 is None else p99 <= 1.0)
    )
    ladders = {r["server"]: r.get("max_n") for r in records if r.get("name") == "authors"}
    a = ratio(ladders.get("tandem"), ladders.get("sharedb"))
    rows.append(
        (
            f"authors: largest N with p95 < 100 ms >= {AUTHORS_TARGET}x",
            f"{fmt_ratio(a)} ({ladders.get('tandem')} vs {ladders.get('sharedb')})",
            None if a is None else a >= AUTHORS_TARGET,
        )
    )
    j = ratio(*_pair(s, "join20k", "join_ms_median"))
    rows.append(
        ("join at 20,000 edits: no slower than ShareDB", fmt_ratio(j), None if j is None else j <= 1.0)
    )
    t20, t200 = s.get(("join20k", "tandem"), {}), s.get(("join200k", "tandem"), {})
    flats = [ratio(t200.get(k), t20.get(k)) for k in ("join_ms_median", "cold_join_ms_median")]
    flat = max((f for f in flats if f is not None), default=None)
    rows.append(
        (
            f"join flat from 20k to 200k edits (Tandem 200k/20k, warm and cold, <= {JOIN_FLAT_FACTOR}x)",
            fmt_ratio(flat),
            None if flat is None else flat <= JOIN_FLAT_FACTOR,
        )
    )
    tr = [r for r in records if r.get("name") == "transform"]
    js, py = transform_rates(tr[-1]) if tr else (None, None)
    t = ratio(py, js)
    rows.append(
        (
            f"transform micro-benchmark >= {TRANSFORM_TARGET}x ot.js",
            f"{fmt_ratio(t)} ({fmt(py)} vs {fmt(js)}/s)",
            None if t is None else t >= TRANSFORM_TARGET,
        )
    )
    return ["| target | Tandem/ShareDB (Tandem/ot.js for transform) | verdict |", "|---|---|---|"] + [
        f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in rows
    ]


def scaling_table(records: list[Result]) -> list[str]:
    runs = sorted(
        (r for r in records if r.get("name") == "scale" and "processes" in r),
        key=lambda r: int(r["processes"]),
    )
    if not runs:
        return []
    base = runs[0].get("edits_per_s")
    lines = [
        "| `tandem serve --workers` | committed edits/s (sum over loadgens) | vs 1 worker "
        "| ack p99 ms (worst) | server CPU: workers / Redis (cores) | us of CPU per edit: workers / Redis "
        "| loadgen CPU (sum) | other CPU | converged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        error = f" error: {str(r['error'])[:150]}" if r.get("error") else ""
        cells = [
            str(r["processes"]),
            fmt(r.get("edits_per_s")),
            fmt_ratio(ratio(r.get("edits_per_s"), base)),
            fmt(r.get("lat_p99_ms")),
            f"{fmt(r.get('server_cores'))} / {fmt(r.get('redis_cores'))}",
            f"{fmt(r.get('server_us_per_edit'))} / {fmt(r.get('redis_us_per_edit'))}",
            fmt(r.get("loadgen_cpu_util")),
            fmt(r.get("other_cpu_util")),
            f"{r.get('converged')}{error}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def trace_rows(records: list[Result]) -> dict[str, dict[str, Result]]:
    """trace -> server -> its run (the last one of each)."""
    out: dict[str, dict[str, Result]] = {}
    for r in records:
        if r.get("name") == "traces" and r.get("trace"):
            out.setdefault(str(r["trace"]), {})[str(r["server"])] = r
    return out


def traces_table(records: list[Result]) -> list[str]:
    rows = trace_rows(records)
    if not rows:
        return []
    lines = [
        "| trace | keystrokes | keystrokes/s ShareDB / Tandem | Tandem/ShareDB "
        "| ops committed ShareDB / Tandem (keystrokes per op) | time to final text s ShareDB / Tandem "
        "| typing s ShareDB / Tandem | server CPU s ShareDB / Tandem | client CPU s ShareDB / Tandem "
        "| other CPU | final text = endContent |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by in rows.items():
        d, t = by.get("sharedb", {}), by.get("tandem", {})
        first = t or d
        keys = f"{first.get('keystrokes', 0):,}"
        if first.get("keystrokes") != first.get("trace_keystrokes"):
            keys += f" of {first.get('trace_keystrokes', 0):,}"

        def pair(key: str, row_d: Result = d, row_t: Result = t) -> str:
            return f"{fmt(row_d.get(key))} / {fmt(row_t.get(key))}"

        def ops(x: Result) -> str:
            return f"{fmt(x.get('ops'))} ({fmt(x.get('keystrokes_per_op'))})"

        errors = "; ".join(str(x["error"])[:150] for x in (d, t) if x.get("error"))
        others = [float(x["other_cpu_util"]) for x in (d, t) if x.get("other_cpu_util") is not None]
        cells = [
            name,
            keys,
            pair("keystrokes_per_s"),
            fmt_ratio(ratio(t.get("keystrokes_per_s"), d.get("keystrokes_per_s"))),
            f"{ops(d)} / {ops(t)}",
            pair("final_s"),
            pair("typed_s"),
            pair("server_cpu_s"),
            pair("client_cpu_s"),
            fmt(max(others)) if others else "n/a",
            f"{d.get('matches')} / {t.get('matches')}" + (f" errors: {errors}" if errors else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def memory_table(records: list[Result]) -> list[str]:
    runs = [r for r in records if r.get("name") == "memory" and "bytes_per_conn" in r]
    if not runs:
        return []
    lines = [
        "| server | N | RSS idle MB | RSS with N idle connections MB | RSS with N open docs MB "
        "| bytes per connection | bytes per document | Redis bytes per document |",
        "|---|---|---|---|---|---|---|---|",
    ]
    mb = 1024 * 1024
    for r in runs:
        lines.append(
            f"| {SERVER_NAMES.get(r['server'], r['server'])} | {r['n']:,} | {fmt(r['base_rss'] / mb)} "
            f"| {fmt(r['conns_rss'] / mb)} | {fmt(r['docs_rss'] / mb)} | {r['bytes_per_conn']:,} "
            f"| {r['bytes_per_doc']:,} | {r['redis_bytes_per_doc']:,} |"
        )
    return lines


def transform_table(records: list[Result]) -> list[str]:
    """ops/s of each OT core per operation, and Tandem's share of ot.js's rate."""
    runs = [r for r in records if r.get("name") == "transform"]
    if not runs:
        return []
    rec = runs[-1]
    js = (rec.get("js") or {}).get("ops_per_s") or {}
    py: Result = rec.get("py") or {}
    tandem: Result = py["ops_per_s"] if isinstance(py.get("ops_per_s"), dict) else {}
    lines = [
        "| operation | ot.js ops/s | ot-text-unicode ops/s | Tandem ot/ ops/s | Tandem/ot.js |",
        "|---|---|---|---|---|",
    ]
    for op in ("transform", "compose", "apply"):
        t, j, u = tandem.get(op), js.get(f"ot.js.{op}"), js.get(f"ot-text-unicode.{op}")
        lines.append(f"| {op} | {fmt(j)} | {fmt(u)} | {fmt(t)} | {fmt_ratio(ratio(t, j))} |")
    if py.get("error"):
        lines.append(f"| (Tandem: {py['error'][:200]}) | | | | |")
    lines.append(
        f"| other CPU (cores): transform-bench.js {fmt((rec.get('js') or {}).get('other_cpu_util'))}, "
        f"bench_ot.py {fmt(py.get('other_cpu_util'))} | | | | |"
    )
    return lines


def render(records: list[Result], header: list[str]) -> str:
    sections = [
        ("Targets", targets_table(records)),
        ("Throughput and acknowledgement latency", workload_table(records)),
        ("Join", join_table(records)),
        ("Authors typing into one document (2 keystrokes/s each)", authors_table(records)),
        ("Many documents over several Tandem workers (one port, one Redis)", scaling_table(records)),
        ("Memory", memory_table(records)),
        ("OT core micro-benchmark", transform_table(records)),
        ("Real editing traces, one client each, as fast as acks allow", traces_table(records)),
    ]
    errors = [
        f"- {r.get('name')} {r.get('server', '')}: {str(r['error'])[:300]}" for r in records if r.get("error")
    ]
    sections.append(("Errors", errors))
    out = list(header)
    for title, lines in sections:
        if lines:
            out += ["", f"#### {title}", "", *lines]
    return "\n".join(out) + "\n"
