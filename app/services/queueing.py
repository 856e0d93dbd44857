"""Jobs a use case starts: put on the queue once its unit of work commits; never before, never on rollback.

A use case writes its rows in the caller's session and registers the jobs that carry their ids
here (``deliver_after_commit``, ``enqueue_after_commit``); ``db.session.after_commit`` runs them
when that session commits. The queue is the one the caller attached to the session
(``use_queue``: a test's recording queue, a script's own) or else the process's
(``app.delivery.runtime.get_runtime().queue``). Pages never enqueue.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.delivery.dispatch import enqueue
from app.delivery.queue import Batch, JobQueue
from db.session import after_commit

QUEUE_KEY = "queue"


def use_queue(session: Session, queue: JobQueue) -> Session:
    """Make ``queue`` the queue this session's use cases enqueue on (instead of the process's)."""
    session.info[QUEUE_KEY] = queue
    return session


def queue_of(session: Session) -> JobQueue:
    """The queue attached to ``session``, or the process's."""
    queue = session.info.get(QUEUE_KEY)
    if queue is None:
        from app.delivery.runtime import get_runtime

        queue = get_runtime().queue
    return queue


def deliver_after_commit(session: Session, batches: Sequence[Batch]) -> None:
    """After the commit, hand these delivery batches to the queue (a failure leaves them to the sweeper)."""
    if batches:
        queue = queue_of(session)
        after_commit(session, lambda: enqueue(queue, batches))


def enqueue_after_commit(session: Session, function: str, *args: str) -> None:
    """After the commit, enqueue the job ``function(*args)`` (ids only); a queue error reaches the caller."""
    queue = queue_of(session)
    after_commit(session, lambda: queue.enqueue(function, *args))
