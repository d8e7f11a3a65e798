"""Fixtures shared by every test package: a real Redis and a real `tandem serve`.

`redis` and `tandem` are started once per test session and shared; tests keep apart by
using their own document ids (`doc`). Tests that kill or restart processes make their own
with the helpers of tests/support.py (`redis_process`, `ServerProcess`, `Deployment`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RedisProcess, ServerProcess, redis_process, unique_doc


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One redis-server (append-only file on) on a free 127.0.0.1 port for the session."""
    process = redis_process(tmp_path_factory.mktemp("redis"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def tandem(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `tandem serve` subprocess on the session's Redis, with small limits tests can reach."""
    server = ServerProcess(
        redis.url,
        tmp_path_factory.mktemp("tandem"),
        extra_args=(
            "--log-level",
            "warning",
            "--snapshot-interval",
            "10",
            "--max-frame-bytes",
            "65536",
            "--max-doc-length",
            "5000",
            "--max-components",
            "50",
            "--ops-per-second",
            "1000",
            "--head-check-seconds",
            "0.3",
        ),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def doc(request: pytest.FixtureRequest) -> str:
    """A document id used by this test only."""
    return unique_doc(request.node.name.split("[")[0][-40:].replace("_", "-"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
