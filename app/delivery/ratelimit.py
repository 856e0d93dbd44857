"""Per-sender send pacing shared by every worker (Redis), or within one process (embedded).

Two rules, both shared by all callers of a sender:

- *Spacing*: send slots ``1/rate`` apart (GCRA without burst), at ``SAFETY`` of the configured
  rate: a caller reserves the next free slot and sleeps until it.
- *The window*: a request starts only while fewer than ``window_limit(rate)`` requests started in
  the second before it (a log of real start times, not of slots). The limit is what the spacing
  gives in a second, rounded up (97 at 100/s, 10 at 10/s, 2 at 2/s), so steady sending never
  waits for it; what it stops is bunching. A caller that wakes late for its slot (a busy CPU)
  still sends when the window has room, so no slot is wasted; when its lateness would bunch
  requests over the limit, it waits for room and takes a new slot.

Spacing keeps requests smooth; the window makes "never above the provider's rate in any second"
hold whatever the callers' timing, with what lies between the limit and the rate (3 at 100/s) left
for network jitter between us and the provider. (A limit of a share of the rate floored to whole
requests cut low rates down: 2/s to one a second.) In Redis both are Lua scripts, atomic across
worker processes and machines.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

SAFETY = 0.965  # slots are spaced at this share of the configured rate
WINDOW_SECONDS = 1.0
MAX_SLOT_TRIES = 50

_NOW = """
local now_ms = redis.call('TIME')
local now = tonumber(now_ms[1]) * 1000000 + tonumber(now_ms[2])
"""

# KEYS[1] the sender's next slot; ARGV[1] the spacing (µs). Reserves the next free slot.
_TAKE_SLOT = """
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.floor((tat - now + interval) / 1000) + 1000)
"""

# KEYS[w] the log of starts; ARGV[a], ARGV[a+1], ARGV[a+2]: the window (µs), its limit, a unique
# member. Admits one request now if the window holds fewer than the limit ('0'); else the
# microseconds until the oldest start leaves it.
_ADMIT_NOW = """
local window = tonumber(ARGV[{a}])
redis.call('ZREMRANGEBYSCORE', KEYS[{w}], '-inf', now - window)
if redis.call('ZCARD', KEYS[{w}]) < tonumber(ARGV[{a} + 1]) then
  redis.call('ZADD', KEYS[{w}], now, ARGV[{a} + 2])
  redis.call('PEXPIRE', KEYS[{w}], math.floor(window / 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[{w}], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

# A slot, and when it is now (no spacing to wait for: a high rate), the window's answer in the
# same round trip: returns 'wait:<µs until the slot>' or the window's answer.
_RESERVE = _NOW + _TAKE_SLOT + """
if tat > now then return 'wait:' .. tostring(tat - now) end
""" + _ADMIT_NOW.format(w=2, a=2)

_ADMIT = _NOW + _ADMIT_NOW.format(w=1, a=1)


def window_limit(rate_per_second: float) -> int:
    """Most requests that may start in any one window: what the spacing gives in it, rounded up
    (at least one), so only callers bunching up ever wait for room."""
    return max(1, math.ceil(rate_per_second * SAFETY * WINDOW_SECONDS))


class RateLimiter(Protocol):
    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        """Block until this caller may send one message on ``key``; return seconds waited."""
        ...


class LocalRateLimiter:
    """In-process pacing for the embedded default (one process, many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._started: dict[str, deque[float]] = {}

    def _reserve(self, key: str, interval: float) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next.get(key, now), now)
            self._next[key] = slot + interval
        return slot - now

    def _admit(self, key: str, limit: int) -> float:
        with self._lock:
            now = time.monotonic()
            started = self._started.setdefault(key, deque())
            while started and started[0] <= now - WINDOW_SECONDS:
                started.popleft()
            if len(started) < limit:
                started.append(now)
                return 0.0
            return started[0] + WINDOW_SECONDS - now

    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        return _wait(lambda: (self._reserve(key, 1.0 / (rate_per_second * SAFETY)), None),
                     lambda: self._admit(key, window_limit(rate_per_second)))


class RedisRateLimiter:
    """Pacing shared through Redis by all worker processes on all machines."""

    def __init__(self, redis_client, prefix: str = "clinic:rate:") -> None:  # type: ignore[no-untyped-def]
        self._redis = redis_client
        self._prefix = prefix
        self._reserve = redis_client.register_script(_RESERVE)
        self._admit = redis_client.register_script(_ADMIT)

    def wait_for_slot(self, key: str, rate_per_second: float) -> float:
        interval_us = int(1_000_000 / (rate_per_second * SAFETY))
        limit = window_limit(rate_per_second)
        window_us = int(WINDOW_SECONDS * 1_000_000)
        started_key = f"{self._prefix}{key}:started"

        def reserve() -> tuple[float, float | None]:
            answer = self._reserve(keys=[self._prefix + key, started_key],
                                   args=[interval_us, window_us, limit, uuid.uuid4().hex]).decode()
            if answer.startswith("wait:"):
                return int(float(answer.removeprefix("wait:"))) / 1_000_000, None
            return 0.0, int(float(answer)) / 1_000_000

        def admit() -> float:
            return int(float(self._admit(keys=[started_key], args=[window_us, limit, uuid.uuid4().hex]))) / 1_000_000

        return _wait(reserve, admit)


def _wait(reserve: Callable[[], tuple[float, float | None]], admit: Callable[[], float]) -> float:
    """Reserve a slot and sleep until it, then start if the window has room; otherwise wait for
    room and take a new slot (waiting callers woken together by the same room would start
    together: a burst that the window would then repeat every second). ``reserve`` gives the wait
    for the slot and, when it asked the window already (the slot was now), its answer. Seconds waited."""
    started = time.monotonic()
    for _ in range(MAX_SLOT_TRIES):
        delay, room_in = reserve()
        if room_in is None:
            if delay > 0:
                time.sleep(delay)
            room_in = admit()
        if room_in <= 0:
            break
        time.sleep(room_in)
    return time.monotonic() - started
