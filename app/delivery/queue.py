"""Job queues: RQ on Redis in production, a thread pool in the embedded default. Same job functions.

Jobs carry message ids only (JSON-serialised), never numbers or bodies: Redis keeps failed jobs,
and patient data stays in the database. Each delivery job has an id we choose
(``deliver-<hex>``) and record on its messages (``messages.delivery_job_id``) *before* the job
is enqueued; while a job runs it keeps a heartbeat. The sweeper asks ``alive(job_ids)`` to tell
a job that is waiting or running from one that Redis lost or whose worker died.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import importlib
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

BATCH_SIZE = 500  # at most this many messages per delivery job
DELIVER_JOB = "worker.jobs.deliver"
JOB_TIMEOUT_SECONDS = 3600
HEARTBEAT_TTL_SECONDS = 45  # a job whose heartbeat is older than this is dead (capped by the sweep setting)

Batch = tuple[str, list[str]]  # (job id, message ids)
log = logging.getLogger(__name__)


def chunks(ids: Sequence[Any], size: int = BATCH_SIZE) -> list[list[str]]:
    return [[str(i) for i in ids[start:start + size]] for start in range(0, len(ids), size)]


def plan_batches(message_ids: Sequence[uuid.UUID | str]) -> list[Batch]:
    """Split ids into delivery jobs of at most BATCH_SIZE, each with a fresh job id."""
    return [(f"deliver-{uuid.uuid4().hex}", chunk) for chunk in chunks(list(message_ids))]


class JobQueue(Protocol):
    def enqueue_batches(self, batches: Sequence[Batch]) -> None:
        """Enqueue one delivery job per batch (ids recorded on the messages beforehand)."""
        ...

    def alive(self, job_ids: Collection[str]) -> set[str]:
        """The job ids that are still waiting in the queue or running with a live heartbeat."""
        ...

    def running(self, job_id: str) -> contextlib.AbstractContextManager[None]:
        """Keep ``job_id``'s heartbeat while the block runs."""
        ...

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        """Run ``func`` (a dotted path) with JSON-serialisable ``args``, now or after a delay."""
        ...


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class RQJobQueue:
    """RQ on Redis with the JSON serializer; delayed jobs need a worker running the scheduler."""

    def __init__(self, redis_connection: Any, name: str = "deliveries",
                 heartbeat_ttl: float = HEARTBEAT_TTL_SECONDS) -> None:
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.redis = redis_connection
        self.name = name
        self.heartbeat_ttl = max(3, int(heartbeat_ttl))
        self.queue = Queue(name, connection=redis_connection, serializer=JSONSerializer,
                           default_timeout=JOB_TIMEOUT_SECONDS)

    def _heartbeat_key(self, job_id: str) -> str:
        return f"clinic:{self.name}:heartbeat:{job_id}"

    def enqueue_batches(self, batches: Sequence[Batch]) -> None:
        from rq import Queue

        if batches:
            self.queue.enqueue_many([
                Queue.prepare_data(DELIVER_JOB, args=(job_id, ids), job_id=job_id, timeout=JOB_TIMEOUT_SECONDS,
                                   result_ttl=600, failure_ttl=86400)
                for job_id, ids in batches
            ])

    def alive(self, job_ids: Collection[str]) -> set[str]:
        from rq.job import Job, JobStatus
        from rq.serializers import JSONSerializer

        ids = list(job_ids)
        if not ids:
            return set()
        with self.redis.pipeline() as pipe:
            for job_id in ids:
                pipe.exists(self._heartbeat_key(job_id))
            beating = {job_id for job_id, exists in zip(ids, pipe.execute(), strict=True) if exists}
        rest = [i for i in ids if i not in beating]
        waiting = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
        jobs = Job.fetch_many(rest, connection=self.redis, serializer=JSONSerializer) if rest else []
        return beating | {job.id for job in jobs if job is not None and job.get_status(refresh=False) in waiting}

    @contextlib.contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        key = self._heartbeat_key(job_id)
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    self.redis.set(key, "1", ex=self.heartbeat_ttl)
                except Exception:  # noqa: BLE001 - a missed beat only risks a harmless duplicate job
                    log.warning("heartbeat for %s failed", job_id)
                if stop.wait(self.heartbeat_ttl / 3):
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{job_id[-6:]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            with contextlib.suppress(Exception):
                self.redis.delete(key)

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        if delay_seconds > 0:
            self.queue.enqueue_in(dt.timedelta(seconds=delay_seconds), func, *args, result_ttl=600)
        else:
            self.queue.enqueue(func, *args, result_ttl=600)


class InProcessQueue:
    """The embedded default: jobs run on background threads of this process, delayed ones by a timer."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery-job")
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        threading.Thread(target=self._run_timers, name="delivery-timers", daemon=True).start()

    def close(self) -> None:
        """Let the running jobs finish and drop the rest, delayed ones too (the process is done with it)."""
        with self._wake:
            self._closed = True
            self._timers.clear()
            self._wake.notify()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, func: str, args: tuple[Any, ...], job_id: str | None = None) -> None:
        if self._closed:
            return
        def run() -> None:
            try:
                _resolve(func)(*args)
            except Exception:  # a job failure must not kill the pool; it is logged, as RQ would
                log.exception("in-process job %s failed", func)
            finally:
                if job_id:
                    with self._lock:
                        self._pending.discard(job_id)

        if job_id:
            with self._lock:
                self._pending.add(job_id)
        self._pool.submit(run)

    def enqueue_batches(self, batches: Sequence[Batch]) -> None:
        for job_id, ids in batches:
            self._submit(DELIVER_JOB, (job_id, ids), job_id)

    def alive(self, job_ids: Collection[str]) -> set[str]:
        with self._lock:
            return {j for j in job_ids if j in self._pending}

    @contextlib.contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        yield  # pending until the job's thread finishes (see _submit)

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        if delay_seconds <= 0:
            self._submit(func, args)
            return
        with self._wake:
            heapq.heappush(self._timers, (time.monotonic() + delay_seconds, next(self._counter), func, args))
            self._wake.notify()

    def _run_timers(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (not self._timers or self._timers[0][0] > time.monotonic()):
                    timeout = (self._timers[0][0] - time.monotonic()) if self._timers else None
                    self._wake.wait(timeout)
                if self._closed:
                    return
                _, _, func, args = heapq.heappop(self._timers)
            self._submit(func, args)
