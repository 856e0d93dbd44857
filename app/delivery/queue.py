"""Job queues: RQ on Redis in production, a thread pool in the embedded default. Same job functions.

Jobs carry message ids only (JSON-serialised), never numbers or bodies: Redis keeps failed jobs,
and patient data stays in the database.
"""

from __future__ import annotations

import datetime as dt
import heapq
import importlib
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

DELIVERY_QUEUE = "deliveries"
BATCH_SIZE = 500  # at most this many messages per delivery job
DELIVER_JOB = "worker.jobs.deliver"
JOB_TIMEOUT_SECONDS = 3600

log = logging.getLogger(__name__)


def chunks(ids: Sequence[Any], size: int = BATCH_SIZE) -> list[list[str]]:
    return [[str(i) for i in ids[start:start + size]] for start in range(0, len(ids), size)]


class JobQueue(Protocol):
    def enqueue_deliveries(self, message_ids: Sequence[uuid.UUID | str]) -> int:
        """Enqueue delivery of these messages in jobs of at most BATCH_SIZE; return the job count."""
        ...

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        """Run ``func`` (a dotted path) with JSON-serialisable ``args``, now or after a delay."""
        ...


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class RQJobQueue:
    """RQ on Redis, JSON serializer; delayed jobs need a worker started with the scheduler."""

    def __init__(self, redis_connection: Any, name: str = DELIVERY_QUEUE) -> None:
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.queue = Queue(name, connection=redis_connection, serializer=JSONSerializer,
                           default_timeout=JOB_TIMEOUT_SECONDS)

    def enqueue_deliveries(self, message_ids: Sequence[uuid.UUID | str]) -> int:
        from rq import Queue

        batches = chunks(list(message_ids))
        if batches:
            self.queue.enqueue_many([
                Queue.prepare_data(DELIVER_JOB, args=(batch,), timeout=JOB_TIMEOUT_SECONDS, result_ttl=600,
                                   failure_ttl=86400)
                for batch in batches
            ])
        return len(batches)

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        if delay_seconds > 0:
            self.queue.enqueue_in(dt.timedelta(seconds=delay_seconds), func, *args, result_ttl=600)
        else:
            self.queue.enqueue(func, *args, result_ttl=600)


class InProcessQueue:
    """The embedded default: jobs run on background threads of this process, delayed ones by a timer."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery-job")
        self._timers: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._timer_thread = threading.Thread(target=self._run_timers, name="delivery-timers", daemon=True)
        self._timer_thread.start()

    def _submit(self, func: str, args: tuple[Any, ...]) -> None:
        def run() -> None:
            try:
                _resolve(func)(*args)
            except Exception:  # a job failure must not kill the pool; it is logged, like RQ would
                log.exception("in-process job %s failed", func)

        self._pool.submit(run)

    def enqueue_deliveries(self, message_ids: Sequence[uuid.UUID | str]) -> int:
        batches = chunks(list(message_ids))
        for batch in batches:
            self._submit(DELIVER_JOB, (batch,))
        return len(batches)

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        if delay_seconds <= 0:
            self._submit(func, args)
            return
        import time

        with self._wake:
            heapq.heappush(self._timers, (time.monotonic() + delay_seconds, next(self._counter), func, args))
            self._wake.notify()

    def _run_timers(self) -> None:
        import time

        while True:
            with self._wake:
                while not self._timers or self._timers[0][0] > time.monotonic():
                    timeout = (self._timers[0][0] - time.monotonic()) if self._timers else None
                    self._wake.wait(timeout)
                _, _, func, args = heapq.heappop(self._timers)
            self._submit(func, args)
