"""The per-caller limiter of HTTP submits: a burst, a steady rate, and bounded memory."""

from __future__ import annotations

import pytest

from tandem.server.limits import KeyedLimiter, retry_after
from tandem.server.settings import load


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_then_a_wait_that_says_how_long() -> None:
    clock = Clock()
    limiter = KeyedLimiter(10, clock=clock)
    assert [limiter.take("a") for _ in range(10)] == [0.0] * 10
    wait = limiter.take("a")
    assert wait == pytest.approx(0.1)
    assert limiter.take("b") == 0.0  # another caller, a bucket of its own
    clock.now += 0.11
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert retry_after(wait) == "1" and retry_after(2.2) == "3"


def test_idle_callers_are_forgotten_and_the_number_kept_is_bounded() -> None:
    clock = Clock()
    limiter = KeyedLimiter(10, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.take(f"caller-{i}")
    assert len(limiter) == 100
    clock.now += 1.0  # every bucket is full again: equal to a fresh one
    limiter.take("late")
    assert len(limiter) == 1


def test_the_setting_defaults_to_the_websocket_rate_and_refuses_nonsense() -> None:
    assert load({}, env={}).http_ops_per_second == 0
    assert load({}, env={"TANDEM_HTTP_OPS_PER_SECOND": "7.5"}).http_ops_per_second == 7.5
    with pytest.raises(ValueError):
        KeyedLimiter(-1)
