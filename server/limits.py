"""Rate limits keyed by caller, for requests that have no connection to hang a bucket on.

Each key (a token subject, or a remote address) gets a token bucket of `rate` per second with
a burst of the same size. Memory stays bounded: a bucket that has refilled completely is
equal to a fresh one and is forgotten, and past `max_keys` the least recently seen key goes
first (that caller starts again with a full burst, which costs at most one burst).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 10_000


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class KeyedLimiter:
    def __init__(
        self, rate: float, *, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be positive, got {rate:g} per second")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently seen first

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """0.0 when `key` may go now (one token taken), else the seconds until it may."""
        now = self.clock()
        self._forget_idle(now)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.rate, now)
        else:
            bucket.tokens = min(self.rate, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # The oldest buckets are the longest idle: stop at the first one not yet full again.
        while self._buckets:
            bucket = next(iter(self._buckets.values()))
            if bucket.tokens + (now - bucket.stamp) * self.rate < self.rate:
                return
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
