"""A hook runner as its own process, for the tests to kill with -9:
``python -m tests.hooks.hook_worker REDIS_URL WEBHOOK_URL SECRET BATCH``. Prints ``ready``."""

from __future__ import annotations

import asyncio
import signal
import sys

from tandem.server.hooks import HookRunner
from tandem.server.settings import Settings
from tandem.server.store.redis import RedisOpStore
from tandem.server.webhook import webhook


async def main(redis_url: str, url: str, secret: str, batch: int) -> None:
    store = RedisOpStore(redis_url, timeout=5.0)
    settings = Settings(
        hook_batch=batch, hook_scan_seconds=1.0, hook_retry_max_seconds=1.0, hook_concurrency=4
    )
    runner = HookRunner(store, [webhook("audit", url, secret, timeout=3.0)], settings)
    await runner.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.stop()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
