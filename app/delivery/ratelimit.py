"""Per-sender send pacing shared by every worker (Redis), or within one process (embedded).

The limiter hands out send slots spaced ``1/rate`` seconds apart (GCRA without burst): a
caller reserves the next free slot and sleeps until it. Slots are reserved atomically in Redis
by a Lua script, so N workers together never exceed the rate. We pace at ``SAFETY`` of the
configured rate so network jitter between us and the provider cannot push a one-second window
over the limit, and a caller that wakes up late for its slot (a busy CPU) gives the slot up and
takes a new one instead of sending late, which would bunch requests together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

SAFETY = 0.965
LATE_SLOT_SECONDS = 0.01  # a caller that wakes this late for its slot gives it up and takes a new one
MAX_SLOT_TRIES = 50

_RESERVE = """
local now_ms = redis.call('TIME')
local now = tonumber(now_ms[1]) * 1000000 + tonumber(now_ms[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.floor((tat - now + interval) / 1000) + 1000)
return tostring(tat - now)
"""


class RateLimiter(Protocol):
    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        """Block until this caller may send one message on ``key``; return seconds waited."""
        ...


class LocalRateLimiter:
    """In-process pacing for the embedded default (one process, many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def _reserve(self, key: str, interval: float) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next.get(key, now), now)
            self._next[key] = slot + interval
        return slot - now

    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        return _wait(lambda: self._reserve(key, 1.0 / (rate_per_second * SAFETY)))


class RedisRateLimiter:
    """Pacing shared through Redis by all worker processes on all machines."""

    def __init__(self, redis_client, prefix: str = "clinic:rate:") -> None:  # type: ignore[no-untyped-def]
        self._redis = redis_client
        self._prefix = prefix
        self._script = redis_client.register_script(_RESERVE)

    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        interval_us = int(1_000_000 / (rate_per_second * SAFETY))
        return _wait(lambda: int(float(self._script(keys=[self._prefix + key], args=[interval_us]))) / 1_000_000)


def _wait(reserve: Callable[[], float]) -> float:
    """Reserve a slot and sleep until it; take a new one if we woke up too late. Seconds waited."""
    started = time.monotonic()
    for _ in range(MAX_SLOT_TRIES):
        delay = reserve()
        target = time.monotonic() + max(delay, 0.0)
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() - target <= LATE_SLOT_SECONDS:
            break
    return time.monotonic() - started
