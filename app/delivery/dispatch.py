"""Putting queued messages on the job queue, recording which job carries each one.

The job id is written to the message rows in the caller's transaction; the jobs are enqueued
only after that transaction commits (``enqueue``), so a job never refers to a row that is not
there, and a lost enqueue is found by the sweeper (rows whose job is not alive).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.delivery.queue import Batch, JobQueue, plan_batches
from db.enums import MessageStatus
from db.models import Message

log = logging.getLogger(__name__)


def assign_jobs(session: Session, message_ids: Sequence[uuid.UUID], now: dt.datetime) -> list[Batch]:
    """Give queued messages new delivery jobs (in the session's transaction); enqueue them after commit."""
    batches = plan_batches(message_ids)
    for job_id, ids in batches:
        session.execute(
            update(Message)
            .where(Message.id.in_([uuid.UUID(i) for i in ids]), Message.status == MessageStatus.QUEUED)
            .values(delivery_job_id=job_id, enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return batches


def enqueue(queue: JobQueue, batches: Sequence[Batch]) -> None:
    """Enqueue after commit. If the queue is unreachable the rows stay safe: the sweeper retries."""
    if not batches:
        return
    try:
        queue.enqueue_batches(batches)
    except Exception as exc:  # noqa: BLE001 - any queue failure leaves the rows for the sweeper
        log.warning("could not enqueue %d delivery jobs (%s); the sweeper will retry", len(batches),
                    type(exc).__name__)
