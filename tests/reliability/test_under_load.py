"""Faults under load: clients keep editing while server processes, Redis and connections fail.

After each run every acknowledged edit is in every replica exactly once, nothing was refused or left
unconfirmed, and the integrity chain of every document verifies. Short, bounded runs of the workload
of scripts/loadtest.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator

import pytest

from tandem.testing.load import LoadConfig, LoadReport, run_load
from tests.support import Deployment, assert_verified, document

pytestmark = pytest.mark.slow
Fault = Callable[[], Awaitable[str]]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with Deployment(tmp_path_factory.mktemp("load"), 2, extra_args=("--head-check-seconds", "0.5")) as d:
        yield d


def run(
    d: Deployment, config: LoadConfig, faults: dict[str, tuple[float, Fault]] | None = None
) -> LoadReport:
    async def text_of(doc: str) -> str:
        return str((await asyncio.to_thread(document, d.http_url, doc))["text"])

    report = asyncio.run(run_load(config, d.ws_urls, text_of, faults))
    assert report.acked > 0 and report.acked == report.edits, report
    assert report.audit.ok, report.audit.details
    assert (report.refused, report.unconfirmed) == (0, 0), report
    for doc in range(config.docs):
        assert_verified(d.http_url, f"load-{config.seed}-{doc}")
    return report


def test_kill_9_of_a_server_process_under_load(deployment: Deployment) -> None:
    turn = [0]

    async def kill_one() -> str:
        server = deployment.servers[turn[0] % 2]
        turn[0] += 1
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(random.uniform(0.05, 0.3))
        await asyncio.to_thread(server.start)
        return "killed"

    config = LoadConfig(clients=8, docs=2, duration=6.0, rate=15, seed=11, drain_timeout=30)
    report = run(deployment, config, {"server kill -9": (1.5, kill_one)})
    assert report.faults.get("server kill -9", 0) >= 2, report.faults


def test_redis_kill_and_restart_under_load(deployment: Deployment) -> None:
    async def kill_redis() -> str:
        await asyncio.to_thread(deployment.kill_redis)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(deployment.restart_redis)
        return "killed"

    config = LoadConfig(clients=8, docs=2, duration=6.0, rate=15, seed=12, drain_timeout=30)
    report = run(deployment, config, {"redis kill -9": (2.0, kill_redis)})
    assert report.faults.get("redis kill -9", 0) >= 1, report.faults


def test_random_connection_cuts_under_load(deployment: Deployment) -> None:
    config = LoadConfig(clients=8, docs=2, duration=5.0, rate=15, seed=13, cut_every=0.1, drain_timeout=30)
    report = run(deployment, config)
    assert report.faults.get("connection cut", 0) >= 20, report.faults
