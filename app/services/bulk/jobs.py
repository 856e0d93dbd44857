"""Bulk jobs after confirmation: the list, live progress, pause / resume / cancel of what is not sent."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, exists, func, select, update

from app.config import get_settings
from app.delivery.lifecycle import log_events
from app.delivery.runtime import Runtime
from app.errors import NotFoundError, ValidationError
from app.services import audit
from app.services.bulk import audience as audiences
from app.services.bulk.expansion import enqueue_queued, lock_job
from app.services.bulk.wizard import authorize_use, may_use
from app.services.permissions import Actor, Permission, authorize
from app.services.queueing import queue_of
from db.enums import (
    AT_PROVIDER_STATUSES,
    BULK_JOB_ENDED,
    BULK_JOB_MOVING,
    WAITING_STATUSES,
    BulkJobStatus,
    Channel,
    MessageStatus,
    Outcome,
    may_move_to,
    move_bulk_job,
    outcome,
    outcome_clause,
    sources_of,
)
from db.models import BulkJob, BulkJobCount, Message, MessageTemplate, User
from db.session import SYSTEM, after_commit, scoped_connection, tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

# The progress bars: the outcomes of ``db.enums.Outcome``, "in progress" split into waiting to
# be sent ("queued") and with the provider ("sent": awaiting its report, or unknown).
GROUPS = ("queued", "sent", "delivered", "failed", "suppressed")
_GROUP_OF_OUTCOME = {Outcome.DELIVERED: "delivered", Outcome.FAILED: "failed", Outcome.NOT_SENT: "suppressed"}


def _group(channel: Channel, status: MessageStatus) -> str:
    kind = outcome(channel, status)
    if kind == Outcome.IN_PROGRESS:
        return "queued" if status in WAITING_STATUSES else "sent"
    return _GROUP_OF_OUTCOME[kind]

LOG_CHUNK = 5000  # lifecycle events written at a time


@dataclass(frozen=True)
class JobRow:
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    created_by: str
    channel: Channel
    audience: str
    content: str
    status: BulkJobStatus
    recipients: int
    written: int
    refused: int
    scheduled_at: dt.datetime | None


@dataclass(frozen=True)
class Progress:
    job: JobRow
    counts: dict[str, int]  # GROUPS -> count
    total: int
    eta_seconds: float | None
    explorer_url: str
    preparing: bool = False  # recipients are still being prepared: ``total`` so far of ``expected``
    expected: int = 0


def _check(session: TenantSession, actor: Actor) -> None:
    authorize_use(session, actor)


def _job(session: TenantSession, job_id: uuid.UUID, actor: Actor, *, lock: bool = False) -> BulkJob:
    """The job (locked for this transaction with ``lock``); front desk only sees the jobs they created."""
    job = lock_job(session, job_id) if lock else session.get(BulkJob, job_id)
    if job is None or (not actor.can(Permission.BULK_SEND) and job.created_by_id != actor.user_id):
        raise NotFoundError("That bulk job does not exist in your clinic.")
    return job


def _rows(session: TenantSession, jobs: list[BulkJob]) -> list[JobRow]:
    users = dict(session.execute(select(User.id, User.username).where(
        User.id.in_({j.created_by_id for j in jobs if j.created_by_id}))).all())
    templates = dict(session.execute(select(MessageTemplate.id, MessageTemplate.code).where(
        MessageTemplate.id.in_({j.template_id for j in jobs if j.template_id}))).all())
    return [JobRow(
        id=j.id, name=j.name, created_at=j.created_at, created_by=users.get(j.created_by_id, ""),
        channel=Channel(j.channel), audience=audiences.describe(j.audience),
        content=f"template {templates.get(j.template_id, '?')}" if j.template_id else (j.custom_body_en[:60]),
        status=BulkJobStatus(j.status), recipients=j.total_recipients, written=j.accepted_count,
        refused=j.rejected_count, scheduled_at=j.scheduled_at) for j in jobs]


def list_jobs(session: TenantSession, actor: Actor, *, limit: int = 200) -> list[JobRow]:
    """The clinic's bulk jobs, newest first (front desk sees the ones they created)."""
    _check(session, actor)
    query = select(BulkJob).order_by(BulkJob.created_at.desc()).limit(limit)
    if not actor.can(Permission.BULK_SEND):
        query = query.where(BulkJob.created_by_id == actor.user_id)
    return _rows(session, list(session.scalars(query)))




def explorer_link(job_id: uuid.UUID) -> str:
    """The Messages page filtered to the job's messages, whenever it was sent (the explorer's own URL)."""
    from app.services.explorer import MessageFilter  # the explorer reads these counters: import it late

    return "messages?" + urlencode(MessageFilter(period="all", bulk_job_id=job_id).to_params())


def status_counts(session: TenantSession, job_id: uuid.UUID) -> dict[tuple[Channel, MessageStatus], int]:
    """How many of the job's recipients are in each (channel, status), by their last attempt: the
    counters the database keeps as messages move (``BulkJobCount``), a few rows whatever the job's size."""
    rows = session.execute(select(BulkJobCount.channel, BulkJobCount.status, func.sum(BulkJobCount.message_count))
                           .where(BulkJobCount.bulk_job_id == job_id)
                           .group_by(BulkJobCount.channel, BulkJobCount.status)).all()
    return {(Channel(channel), MessageStatus(status)): int(count) for channel, status, count in rows if count}


def _grouped_counts(session: TenantSession, job_id: uuid.UUID) -> dict[str, int]:
    """The job's recipients per progress group (``GROUPS``), from its counters."""
    counts = dict.fromkeys(GROUPS, 0)
    for (channel, status), count in status_counts(session, job_id).items():
        counts[_group(channel, status)] += count
    return counts


def progress(session: TenantSession, actor: Actor, job_id: uuid.UUID) -> Progress:
    """Live counts per group (each recipient's last attempt), and when the rest should be sent at the
    channel's rate."""
    _check(session, actor)
    job = _job(session, job_id, actor)
    counts = _grouped_counts(session, job.id)
    waiting = counts["queued"]
    rate = get_settings().rate_for(Channel(job.channel).value)
    eta = waiting / rate if waiting and BulkJobStatus(job.status) == BulkJobStatus.SENDING else None
    preparing = job.prepared_at is None and BulkJobStatus(job.status) in BULK_JOB_MOVING
    return Progress(job=_rows(session, [job])[0], counts=counts, total=sum(counts.values()), eta_seconds=eta,
                    explorer_url=explorer_link(job.id), preparing=preparing,
                    expected=max(job.total_recipients or 0, sum(counts.values())))


def _move(session: TenantSession, job: BulkJob, source: MessageStatus, target: MessageStatus, event: str,
          detail: str, values: dict[str, object], *, limit: int | None = None) -> list[uuid.UUID]:
    """Move (at most ``limit`` of) the job's messages in ``source`` to ``target``, each logged.

    The lifecycle table must list ``source -> target`` (``TransitionNotAllowed`` otherwise).
    """
    if limit == 0:
        return []
    now = utcnow()
    chosen = select(Message.id).where(Message.bulk_job_id == job.id, Message.status == source)
    if limit is not None:
        chosen = chosen.limit(limit)
    statement = update(Message).where(Message.id.in_(chosen), may_move_to(Message.status, target, (source,)))
    moved = list(session.scalars(statement.values(status=target, updated_at=now, **values).returning(Message.id)
                                 .execution_options(synchronize_session=False)))
    for start in range(0, len(moved), LOG_CHUNK):
        log_events(session, job.tenant_id, moved[start:start + LOG_CHUNK], event, from_status=source,
                   to_status=target, detail=detail, at=now)
    return moved


@dataclass(frozen=True)
class JobEnding:
    """A bulk job that ended, as its creator is told once (a notice on their next page view)."""

    id: uuid.UUID
    name: str
    status: BulkJobStatus
    counts: dict[str, int]  # GROUPS -> count, each recipient's last attempt
    explorer_url: str

    @property
    def summary(self) -> str:
        parts = [f"{self.counts[group]:,} {label}" for group, label in (
            ("delivered", "delivered"), ("sent", "with the provider, no report"), ("failed", "failed"),
            ("suppressed", "not sent"), ("queued", "not sent yet")) if self.counts.get(group)]
        return ", ".join(parts) or "no messages"


def take_endings(session: TenantSession, actor: Actor) -> list[JobEnding]:
    """The jobs ``actor`` created that ended since they were last told, oldest first; each is returned
    once (marked noticed in the same transaction)."""
    if not may_use(actor):
        return []  # an analyst creates no jobs
    authorize_use(session, actor)
    ended = list(session.scalars(select(BulkJob).where(
        BulkJob.created_by_id == actor.user_id, BulkJob.status.in_(BULK_JOB_ENDED),
        BulkJob.end_noticed_at.is_(None)).order_by(BulkJob.completed_at).limit(20).with_for_update(skip_locked=True)))
    now = utcnow()
    endings = []
    for job in ended:
        job.end_noticed_at = now
        endings.append(JobEnding(id=job.id, name=job.name, status=BulkJobStatus(job.status),
                                 counts=_grouped_counts(session, job.id),
                                 explorer_url=explorer_link(job.id)))
    return endings


IN_FLIGHT_WAIT_SECONDS = 2.0  # how long pause and cancel wait for sends claimed just before them


def _waiting(session: TenantSession, job: BulkJob) -> int:
    return sum(count for (_, status), count in status_counts(session, job.id).items() if status in WAITING_STATUSES)


def _after_in_flight(session: TenantSession, job: BulkJob) -> None:
    """Once the switch is committed, wait (briefly) for the sends claimed before it to reach the
    provider and be recorded: when pause or cancel returns, nothing more of the job is sent. Polls
    the job's counters (a scan of a job still being written could take a second each time)."""
    engine, clinic, job_id = session.get_bind(), job.tenant_id, job.id

    def wait() -> None:
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while time.monotonic() < deadline:
            with scoped_connection(engine, clinic) as connection:  # type: ignore[arg-type]
                sending = connection.scalar(select(func.sum(BulkJobCount.message_count)).where(
                    BulkJobCount.bulk_job_id == job_id, BulkJobCount.status == MessageStatus.SENDING))
            if not sending:
                return
            time.sleep(0.05)

    after_commit(session, wait)


def pause(session: TenantSession, actor: Actor, job_id: uuid.UUID) -> int:
    """Pause the job: one row changes, and no message of it is claimed for sending until it is
    resumed (messages already with the provider are not recalled); returns how many wait."""
    authorize(session, actor, Permission.BULK_SEND)
    job = _job(session, job_id, actor, lock=True)
    if BulkJobStatus(job.status) not in (BulkJobStatus.SENDING, BulkJobStatus.SCHEDULED):
        raise ValidationError("Only a sending or scheduled job can be paused.")
    move_bulk_job(job, BulkJobStatus.PAUSED)
    waiting = _waiting(session, job)
    audit.record(session, actor, "bulk_job.pause", object_type="bulk_job", object_id=job.id,
                 details={"held": waiting})
    _after_in_flight(session, job)
    return waiting


def resume(session: TenantSession, actor: Actor, job_id: uuid.UUID) -> int:
    """Let the job send again; its waiting messages are handed to the queue after the commit.
    Returns how many wait to be sent (a scheduled job's wait for its time)."""
    authorize(session, actor, Permission.BULK_SEND)
    job = _job(session, job_id, actor, lock=True)
    if BulkJobStatus(job.status) != BulkJobStatus.PAUSED:
        raise ValidationError("Only a paused job can be resumed.")
    later = job.scheduled_at is not None and job.scheduled_at > utcnow()
    move_bulk_job(job, BulkJobStatus.SCHEDULED if later else BulkJobStatus.SENDING)
    waiting = _waiting(session, job)
    if not later:
        engine, clinic, queue = session.get_bind(), job.tenant_id, queue_of(session)
        after_commit(session, lambda: enqueue_queued(engine, clinic, job_id, queue))  # type: ignore[arg-type]
    audit.record(session, actor, "bulk_job.resume", object_type="bulk_job", object_id=job.id,
                 details={"released": waiting})
    return waiting


def cancel(session: TenantSession, actor: Actor, job_id: uuid.UUID) -> int:
    """Cancel the job: one row changes and nothing more of it is sent; its waiting messages settle
    to ``cancelled`` in the background (each maintenance pass). Returns how many will not be sent."""
    authorize(session, actor, Permission.BULK_SEND)
    job = _job(session, job_id, actor, lock=True)
    if BulkJobStatus(job.status) not in BULK_JOB_MOVING:
        raise ValidationError("This job is finished; there is nothing left to cancel.")
    move_bulk_job(job, BulkJobStatus.CANCELLED)
    job.completed_at = utcnow()
    if job.created_by_id == actor.user_id:
        job.end_noticed_at = job.completed_at  # they cancelled it themselves: nothing to tell them
    waiting = _waiting(session, job)
    audit.record(session, actor, "bulk_job.cancel", object_type="bulk_job", object_id=job.id,
                 details={"cancelled": waiting})
    _after_in_flight(session, job)
    return waiting


SETTLE_PER_PASS = 50_000  # cancelled messages written per maintenance pass


def settle_cancelled(runtime: Runtime, now: dt.datetime) -> int:
    """Move the waiting messages of cancelled jobs to ``cancelled`` (logged), a bounded number per
    pass; how many. Finding the jobs reads ids and clinics only; each is settled inside its clinic."""
    waiting = exists().where(Message.bulk_job_id == BulkJob.id, Message.status.in_(sources_of(
        MessageStatus.CANCELLED)))
    with scoped_connection(runtime.engine, SYSTEM) as connection:
        found = connection.execute(select(BulkJob.id, BulkJob.tenant_id).where(
            BulkJob.status == BulkJobStatus.CANCELLED, waiting).limit(100)).all()
    settled = 0
    for job_id, clinic in found:
        with tenant_session(runtime.engine, clinic) as session:
            job = session.get(BulkJob, job_id)
            if job is None:
                continue
            for source in sources_of(MessageStatus.CANCELLED):
                settled += len(_move(session, job, source, MessageStatus.CANCELLED, "cancelled",
                                     "the bulk job was cancelled", {"status_reason": "Cancelled by staff.",
                                                                    "finished_at": now},
                                     limit=max(SETTLE_PER_PASS - settled, 0)))
        if settled >= SETTLE_PER_PASS:
            break
    return settled


def complete_finished(runtime: Runtime, now: dt.datetime) -> int:
    """Move on the jobs whose state the messages decided; how many ended. Run by each maintenance pass.

    A scheduled job whose time has come is ``sending``; a sending or scheduled job none of whose
    messages still holds it open (``_holds_open``) is ``completed``: every recipient's last attempt
    has its outcome, or has waited for the provider's report longer than anyone should (the counts
    say whether some failed and how many were never reported). Finding them reads job ids and
    clinics only; each job is moved inside its clinic, after checking again under its row lock.
    """
    report_due = now - dt.timedelta(hours=runtime.settings.delivery_report_wait_hours)
    moving = exists().where(Message.bulk_job_id == BulkJob.id, _holds_open(report_due))
    with scoped_connection(runtime.engine, SYSTEM) as connection:
        due = connection.execute(select(BulkJob.id, BulkJob.tenant_id).where(
            BulkJob.status == BulkJobStatus.SCHEDULED, BulkJob.scheduled_at <= now).limit(500)).all()
        finished = connection.execute(select(BulkJob.id, BulkJob.tenant_id).where(
            BulkJob.status.in_((BulkJobStatus.SENDING, BulkJobStatus.SCHEDULED)), BulkJob.prepared_at.is_not(None),
            ~moving).limit(500)).all()
    for job_id, clinic in due:
        with tenant_session(runtime.engine, clinic) as session:
            job = lock_job(session, job_id)
            if job is not None and BulkJobStatus(job.status) == BulkJobStatus.SCHEDULED:
                move_bulk_job(job, BulkJobStatus.SENDING)
                job.started_at = job.started_at or now
    ended = 0
    for job_id, clinic in finished:
        with tenant_session(runtime.engine, clinic) as session:
            job = lock_job(session, job_id)
            if job is None or job.prepared_at is None or BulkJobStatus(job.status) not in (
                    BulkJobStatus.SENDING, BulkJobStatus.SCHEDULED):
                continue
            if session.scalar(select(exists().where(Message.bulk_job_id == job.id, _holds_open(report_due)))):
                continue
            move_bulk_job(job, BulkJobStatus.COMPLETED)
            job.completed_at = now
            ended += 1
    return ended


def _holds_open(report_due: dt.datetime) -> Any:
    """A message whose outcome is not decided yet (``db.enums.Outcome.IN_PROGRESS``: waiting, with the
    provider, or unknown), except one handed to the provider before ``report_due`` whose report never
    came. Delivered, failed and not-sent ones are decided even if a later report (``read``) may come."""
    unreported = and_(Message.status.in_(AT_PROVIDER_STATUSES),
                      func.coalesce(Message.sent_at, Message.updated_at) < report_due)
    return and_(outcome_clause(Message.channel, Message.status, Outcome.IN_PROGRESS), ~unreported)
