"""Everything delivery needs in one process: engine, settings, providers, pacing, queue."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from app.config import Settings, get_settings
from app.delivery.queue import HEARTBEAT_TTL_SECONDS, InProcessQueue, JobQueue, RQJobQueue
from app.delivery.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from app.providers.base import ProviderSet
from app.providers.registry import build_providers
from db.types import utcnow


@dataclass
class Runtime:
    engine: Engine
    settings: Settings
    providers: ProviderSet
    limiter: RateLimiter
    queue: JobQueue
    clock: Callable[[], dt.datetime] = field(default=utcnow)  # tests move time forward here
    # Providers built for clinics' route steps, reused across batches (see app.delivery.routes).
    step_providers: dict[Any, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return isinstance(self.queue, InProcessQueue)


_lock = threading.Lock()
_override: Runtime | None = None


def redis_connection(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def build_runtime(settings: Settings | None = None, engine: Engine | None = None) -> Runtime:
    from app.database import engine_for

    settings = settings or get_settings()
    engine = engine or engine_for(settings.database_url)
    if settings.redis_url:
        connection = redis_connection(settings.redis_url)
        queue: JobQueue = RQJobQueue(connection, settings.rq_queue,
                                     heartbeat_ttl=min(HEARTBEAT_TTL_SECONDS, settings.sweep_queued_after_seconds))
        limiter: RateLimiter = RedisRateLimiter(connection, prefix=f"clinic:{settings.rq_queue}:rate:")
    else:
        queue, limiter = InProcessQueue(), LocalRateLimiter()
    return Runtime(engine, settings, build_providers(settings), limiter, queue)


@lru_cache(maxsize=1)
def _default_runtime() -> Runtime:
    return build_runtime()


def get_runtime() -> Runtime:
    """The process's runtime (built from the settings on first use; tests may install their own)."""
    with _lock:
        if _override is not None:
            return _override
    return _default_runtime()


def install_runtime(runtime: Runtime | None) -> None:
    """Use ``runtime`` for this process (tests, the embedded app); None restores the default."""
    global _override
    with _lock:
        _override = runtime
    _default_runtime.cache_clear()


def close_runtime() -> None:
    """Stop the process runtime's in-process jobs, then forget it (tests moving to another database)."""
    with _lock:
        runtime = _override
    if runtime is None and _default_runtime.cache_info().currsize:
        runtime = _default_runtime()
    close = getattr(runtime.queue, "close", None) if runtime is not None else None
    if close is not None:
        close()
    install_runtime(None)
