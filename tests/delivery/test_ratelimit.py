"""Send pacing: smooth, and never more starts in any one second than the window admits, however
late the callers wake (in-process and through Redis, by several limiters as several workers)."""

from __future__ import annotations

import bisect
import threading
import time
import uuid

import pytest

from app.delivery import ratelimit
from app.delivery.ratelimit import LocalRateLimiter, RedisRateLimiter, window_limit


def _busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0, lo=i) - i for i, t in enumerate(times)), default=0)


class _Starved:
    """``time`` for the limiter, whose every ``late_every``-th sleep ends 60 ms late (a busy CPU)."""

    def __init__(self, late_every: int) -> None:
        self.late_every, self.calls, self.lock = late_every, 0, threading.Lock()

    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.calls += 1
            late = self.late_every and self.calls % self.late_every == 0
        time.sleep(seconds + (0.06 if late else 0.0))


def _send_from_threads(limiters: list, key: str, rate: float, seconds: float, threads: int,  # type: ignore[type-arg]
                       monkeypatch, late_every: int = 0) -> list[float]:  # type: ignore[no-untyped-def]
    """Callers on ``limiters`` (round robin) take slots for ``seconds``; the start times."""
    monkeypatch.setattr(ratelimit, "time", _Starved(late_every))
    starts: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def caller(limiter) -> None:  # type: ignore[no-untyped-def]
        while time.monotonic() < deadline:
            limiter.wait_for_slot(key, rate)
            with lock:
                starts.append(time.monotonic())

    workers = [threading.Thread(target=caller, args=(limiters[i % len(limiters)],)) for i in range(threads)]
    [w.start() for w in workers]
    [w.join(seconds + 10) for w in workers]
    return starts


def test_the_window_admits_what_the_spacing_gives_in_a_second_rounded_up() -> None:
    # Room for jitter at a high rate (97 at 100/s), the whole spacing at a low one: a share of the
    # rate floored to whole requests left 2/s one a second (half the rate).
    assert ratelimit.WINDOW_SECONDS == 1.0
    assert [window_limit(r) for r in (100_000, 100, 80, 40, 10, 3, 2, 1, 0.5)] == [
        96_500, 97, 78, 39, 10, 3, 2, 1, 1]


@pytest.mark.parametrize("rate", [2, 3, 10])
def test_low_rates_are_sent_at_their_spacing_not_cut_down_by_the_window(rate: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seconds = 4.0
    starts = _send_from_threads([LocalRateLimiter()], "twilio:sms", rate, seconds, threads=4, monkeypatch=monkeypatch)
    assert _busiest_second(starts) <= rate
    sent = sum(1 for t in starts if t - min(starts) < seconds)  # callers still waiting at the end start later
    assert sent >= 0.85 * rate * ratelimit.SAFETY * seconds, f"{sent} sent in {seconds} s at {rate}/s"


def test_the_redis_window_refuses_the_request_over_its_limit_until_the_oldest_leaves(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"test-rate-{uuid.uuid4().hex[:8]}:started"
    admit = client.register_script(ratelimit._ADMIT)
    window_us = int(ratelimit.WINDOW_SECONDS * 1_000_000)
    try:
        assert [admit(keys=[key], args=[window_us, 3, f"m{n}"]) for n in range(3)] == [b"0", b"0", b"0"]
        waited = int(float(admit(keys=[key], args=[window_us, 3, "m3"]))) / 1_000_000
        assert ratelimit.WINDOW_SECONDS - 0.1 < waited <= ratelimit.WINDOW_SECONDS
        assert client.zcard(key) == 3 and 0 < client.pttl(key) <= window_us // 1000 + 1000
    finally:
        client.delete(key)


def test_the_window_refuses_the_request_over_its_limit_until_the_oldest_leaves() -> None:
    limiter = LocalRateLimiter()
    assert [limiter._admit("k", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    waited = limiter._admit("k", 3)
    assert 0.9 < waited <= ratelimit.WINDOW_SECONDS, "room comes when the first start leaves the window"
    assert limiter._admit("other", 3) == 0.0, "each sender has its own window"


def test_in_process_callers_are_smooth_and_never_over_the_window(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    starts = _send_from_threads([LocalRateLimiter()], "twilio:sms", 40, 3.0, threads=12, monkeypatch=monkeypatch)
    assert _busiest_second(starts) <= 40  # the rate (the window admits 39; the test's own clock jitters)
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] > 0.5 / 40, "spaced, not sent in bursts"
    assert len(starts) >= 0.85 * 40 * ratelimit.SAFETY * 3.0


def test_late_callers_send_in_their_window_instead_of_throwing_their_slot_away(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    starts = _send_from_threads([LocalRateLimiter()], "twilio:sms", 40, 3.0, threads=12, monkeypatch=monkeypatch,
                                late_every=3)
    assert _busiest_second(starts) <= 40  # the rate (the window admits 39; the test's own clock jitters)
    assert len(starts) >= 0.85 * 40 * ratelimit.SAFETY * 3.0


@pytest.mark.parametrize("late_every", [0, 3])
def test_workers_sharing_redis_never_start_more_in_a_second_than_the_window(redis_url: str, late_every: int,
                                                                           monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_url)
    prefix = f"test-rate-{uuid.uuid4().hex[:8]}:"
    limiters = [RedisRateLimiter(redis.Redis.from_url(redis_url), prefix=prefix) for _ in range(2)]
    try:
        starts = _send_from_threads(limiters, "twilio:sms", 40, 3.0, threads=16, monkeypatch=monkeypatch,
                                    late_every=late_every)
    finally:
        for stale in client.scan_iter(f"{prefix}*"):
            client.delete(stale)
    assert _busiest_second(starts) <= 40  # the rate (the window admits 39; the test's own clock jitters)
    assert len(starts) >= 0.85 * 40 * ratelimit.SAFETY * 3.0, "no slot is thrown away for being late"
