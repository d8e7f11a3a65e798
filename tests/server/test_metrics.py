"""/metrics in the Prometheus text format, read by a strict parser: names, types, histograms."""

from __future__ import annotations

import math
import re

from tandem.ot.protocol import ErrorCode
from tandem.server.metrics import COMMIT_BUCKETS, Metrics
from tests.support import Raw, ServerProcess, http_get

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf'({NAME})(?:\{{((?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*",?)*)\}})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\\n]|\\[\\"n])*)"')

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Types by family and samples by family; fails on anything the format does not allow."""
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: Samples = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert re.fullmatch(NAME, name) and name not in helps, line
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram") and name not in types, line
            assert name in helps, f"TYPE before HELP: {line}"
            types[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample: {line!r}"
            name, labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in types, f"sample before its TYPE: {line}"
            samples.setdefault(name, []).append((dict(LABEL.findall(labels or "")), float(value)))
    return types, samples


def check_conventions(types: dict[str, str], samples: Samples) -> None:
    for name, kind in types.items():
        assert name.startswith("tandem_")
        assert name.endswith("_total") == (kind == "counter"), f"{name}: only counters end in _total"
        if kind == "histogram":
            buckets = samples[name + "_bucket"]
            bounds = [float(labels["le"]) for labels, _ in buckets]
            counts = [v for _, v in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf
            assert counts == sorted(counts), f"{name}: buckets must be cumulative"
            assert samples[name + "_count"] == [({}, counts[-1])]
            assert samples[name + "_sum"][0][1] >= 0
        else:
            assert samples[name], f"{name} has no sample"


def metrics(server: ServerProcess) -> tuple[dict[str, str], Samples]:
    status, body = http_get(f"{server.http_url}/metrics")
    assert status == 200
    return parse(body.decode())


def test_metrics_follow_the_prometheus_conventions(tandem: ServerProcess, doc: str) -> None:
    with Raw(tandem.ws_url, doc) as a:
        a.hello("a")
        a.send({"type": "op", "seq": 1, "base": 0, "ops": [{"type": "Insert", "content": "x"}]})
        a.until("ack")
        types, samples = metrics(tandem)
        assert samples["tandem_connections"][0][1] >= 1
    check_conventions(types, samples)
    assert types["tandem_commit_duration_seconds"] == "histogram"
    assert samples["tandem_commit_duration_seconds_count"][0][1] >= 1
    assert samples["tandem_commits_total"][0][1] >= 1 and samples["tandem_open_documents"][0][1] >= 1
    assert samples["tandem_redis_up"] == [({}, 1.0)]
    codes = {labels["code"] for labels, _ in samples["tandem_errors_total"]}
    assert codes >= {c.value for c in ErrorCode}, "every code shown, at 0 before it happens"


def test_render_escapes_labels_and_keeps_large_counts_exact() -> None:
    m = Metrics()
    m.inc("tandem_errors_total", label='a"b\\c\nd')
    m.inc("tandem_ops_committed_total", 123_456_789)
    for seconds in (0.0001, 0.0005, 0.003, 7.0):
        m.observe("tandem_commit_duration_seconds", seconds)
    types, samples = parse(m.render())
    check_conventions(types, samples)
    assert ({"code": 'a\\"b\\\\c\\nd'}, 1.0) in samples["tandem_errors_total"]
    assert samples["tandem_ops_committed_total"] == [({}, 123_456_789)]
    buckets = {labels["le"]: v for labels, v in samples["tandem_commit_duration_seconds_bucket"]}
    assert len(buckets) == len(COMMIT_BUCKETS) + 1
    assert (buckets["0.0005"], buckets["0.005"], buckets["5.0"], buckets["+Inf"]) == (2, 3, 3, 4)
