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
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from app.delivery.queue import Batch, JobQueue, plan_batches
from db.enums import BULK_JOB_HOLDS, MessageStatus
from db.models import BulkJob, Message

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


def not_held() -> Any:
    """Messages whose bulk job (if any) is not paused or cancelled: the job-level switch that the
    claim and the sweeper honour, so pausing a job of a million messages changes one row."""
    return or_(Message.bulk_job_id.is_(None), ~exists().where(
        BulkJob.id == Message.bulk_job_id, BulkJob.status.in_(BULK_JOB_HOLDS)))


def lock_jobs_of(connection: Any, message_ids: Sequence[uuid.UUID]) -> None:
    """Hold the bulk jobs of these messages against a pause or cancel until this transaction ends
    (PostgreSQL ``FOR SHARE``): a claim either commits before the pause does, and the pause then
    waits for those sends, or runs after it and claims nothing."""
    if connection.dialect.name != "postgresql" or not message_ids:
        return
    connection.execute(select(BulkJob.id).where(BulkJob.id.in_(
        select(Message.bulk_job_id).where(Message.id.in_(list(message_ids)), Message.bulk_job_id.is_not(None))
    )).with_for_update(read=True))
