"""The embedded redis-server rewrites its append-only file by itself, so the file holds the data,
not every write ever made."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from tandem.server.redis_process import AOF_REWRITE_MIN_SIZE, AOF_REWRITE_PERCENTAGE, RedisProcess
from tests.support import free_port


def test_the_embedded_redis_runs_with_the_stated_rewrite_policy(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, port=free_port()) as process:
        client: Any = redis.Redis.from_url(process.url)
        try:
            assert client.config_get("auto-aof-rewrite-percentage") == {
                "auto-aof-rewrite-percentage": str(AOF_REWRITE_PERCENTAGE)
            }
            assert AOF_REWRITE_MIN_SIZE == "64mb"
            assert client.config_get("auto-aof-rewrite-min-size") == {
                "auto-aof-rewrite-min-size": str(64 * 1024 * 1024)
            }
        finally:
            client.close()


def test_the_append_only_file_is_rewritten_once_it_outgrows_the_data(tmp_path: Path) -> None:
    # 4 MB of writes over a 100 KB value: past a 1 MB minimum the file is rewritten to about the
    # value's size, in the background, with nobody asking.
    with RedisProcess(tmp_path, port=free_port(), aof_rewrite_min_size="1mb") as process:
        client: Any = redis.Redis.from_url(process.url)
        try:
            for i in range(40):
                client.set("k", bytes([i % 256]) * 100_000)
            deadline = time.monotonic() + 20
            while True:
                info = client.info("persistence")
                # (Redis 6.2 counts no rewrites: the file shrinking from 4 MB says it was rewritten)
                if info["aof_current_size"] < 1_000_000 and not info["aof_rewrite_in_progress"]:
                    break
                assert time.monotonic() < deadline, info
                time.sleep(0.05)
            client.set("k", b"last")
        finally:
            client.close()
        process.stop()
        process.start()
        client = redis.Redis.from_url(process.url)
        try:
            assert client.get("k") == b"last", "the rewritten file reads back"
        finally:
            client.close()
