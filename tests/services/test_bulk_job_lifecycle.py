"""A bulk job has a lifecycle that ends (issue 18): its states in one table, completed when every
recipient's last attempt has its outcome, and a retry counted as another attempt, not a new recipient."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, select, update

from app.services import messaging
from app.services.bulk import jobs
from app.services.queueing import use_queue
from db.enums import (
    BULK_JOB_ENDED,
    BULK_JOB_TRANSITIONS,
    BulkJobStatus,
    MessageStatus,
    Role,
    TransitionNotAllowed,
    move_bulk_job,
)
from db.models import BulkJob, Message
from db.session import tenant_session
from tests.factories import make_tenant, make_user, system_connection
from tests.services.test_bulk_send import FakeRuntime, RecordingQueue, add_patients, confirm, draft, expand


def test_an_ended_job_never_moves_again() -> None:
    assert BULK_JOB_ENDED == {BulkJobStatus.COMPLETED, BulkJobStatus.CANCELLED, BulkJobStatus.FAILED}
    for ended in BULK_JOB_ENDED:
        job = BulkJob(status=ended)
        for target in BulkJobStatus:
            with pytest.raises(TransitionNotAllowed):
                move_bulk_job(job, target)
    job = BulkJob(status=BulkJobStatus.SENDING)
    move_bulk_job(job, BulkJobStatus.PAUSED)
    assert job.status == BulkJobStatus.PAUSED
    assert all(target in BulkJobStatus for moves in BULK_JOB_TRANSITIONS.values() for target in moves)


def _set_status(engine: Engine, ids: list[uuid.UUID], status: MessageStatus) -> None:
    with system_connection(engine) as connection:
        connection.execute(update(Message).where(Message.id.in_(ids)).values(status=status))


def _messages(engine: Engine, clinic: uuid.UUID, job_id: uuid.UUID) -> list[uuid.UUID]:
    with tenant_session(engine, clinic) as session:
        return list(session.scalars(select(Message.id).where(Message.bulk_job_id == job_id)
                                    .order_by(Message.recipient)))


def _status(engine: Engine, clinic: uuid.UUID, job_id: uuid.UUID) -> BulkJobStatus:
    with tenant_session(engine, clinic) as session:
        job = session.get(BulkJob, job_id)
        assert job is not None
        return BulkJobStatus(job.status)


@pytest.fixture
def two_clinics(engine: Engine):  # type: ignore[no-untyped-def]
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    add_patients(engine, a, 3)
    add_patients(engine, b, 3)  # the same numbers and names in the other clinic
    return engine, (a, make_user(engine, a, "amira", Role.ADMIN)), (b, make_user(engine, b, "bushra", Role.ADMIN))


def test_a_job_completes_when_every_message_is_final_and_not_before(two_clinics) -> None:  # type: ignore[no-untyped-def]
    engine, (a, admin_a), (b, admin_b) = two_clinics
    job_a = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    job_b = confirm(engine, admin_b, draft({"kind": "all"})).bulk_job_id
    expand(engine, job_a)
    expand(engine, job_b)
    a_ids, b_ids = _messages(engine, a, job_a), _messages(engine, b, job_b)
    _set_status(engine, a_ids[:2], MessageStatus.DELIVERED)
    _set_status(engine, a_ids[2:], MessageStatus.FAILED)
    _set_status(engine, b_ids[:2], MessageStatus.DELIVERED)  # B's third is still queued
    runtime = FakeRuntime(engine)

    assert jobs.complete_finished(runtime, runtime.clock()) == 1  # type: ignore[arg-type]
    assert _status(engine, a, job_a) == BulkJobStatus.COMPLETED
    assert _status(engine, b, job_b) == BulkJobStatus.SENDING
    with tenant_session(engine, a) as session:
        progress = jobs.progress(session, admin_a, job_a)
    assert (progress.counts["delivered"], progress.counts["failed"], progress.total) == (2, 1, 3)

    _set_status(engine, b_ids[2:], MessageStatus.SENT)  # sent is not final: awaiting the carrier's report
    assert jobs.complete_finished(runtime, runtime.clock()) == 0  # type: ignore[arg-type]
    _set_status(engine, b_ids[2:], MessageStatus.UNDELIVERED)
    assert jobs.complete_finished(runtime, runtime.clock()) == 1  # type: ignore[arg-type]
    assert _status(engine, b, job_b) == BulkJobStatus.COMPLETED
    assert jobs.complete_finished(runtime, runtime.clock()) == 0  # type: ignore[arg-type]


def test_a_job_whose_last_reports_never_come_completes_after_the_wait(two_clinics) -> None:  # type: ignore[no-untyped-def]
    """Some carriers never report on an SMS: a job must not stay "sending" for ever because of them."""
    engine, (a, admin_a), (b, admin_b) = two_clinics
    job_a = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    job_b = confirm(engine, admin_b, draft({"kind": "all"})).bulk_job_id
    expand(engine, job_a)
    expand(engine, job_b)
    a_ids, b_ids = _messages(engine, a, job_a), _messages(engine, b, job_b)
    _set_status(engine, a_ids[:1], MessageStatus.DELIVERED)
    _set_status(engine, a_ids[1:] + b_ids, MessageStatus.SENT)
    handed_over = dt.datetime.now(dt.UTC)
    with system_connection(engine) as connection:
        connection.execute(update(Message).where(Message.id.in_(a_ids + b_ids)).values(sent_at=handed_over))
    runtime = FakeRuntime(engine)
    wait = dt.timedelta(hours=runtime.settings.delivery_report_wait_hours)

    assert jobs.complete_finished(runtime, handed_over + wait - dt.timedelta(minutes=1)) == 0  # type: ignore[arg-type]
    with system_connection(engine) as connection:  # clinic B's reports are late, A's never come
        connection.execute(update(Message).where(Message.id.in_(b_ids)).values(
            sent_at=handed_over + dt.timedelta(hours=2)))
    assert jobs.complete_finished(runtime, handed_over + wait + dt.timedelta(minutes=1)) == 1  # type: ignore[arg-type]
    assert _status(engine, a, job_a) == BulkJobStatus.COMPLETED
    assert _status(engine, b, job_b) == BulkJobStatus.SENDING
    with tenant_session(engine, a) as session:
        progress = jobs.progress(session, admin_a, job_a)
    assert (progress.counts["delivered"], progress.counts["sent"], progress.total) == (1, 2, 3), \
        "the unreported stay counted as with the provider, not as delivered or failed"


def test_a_retry_is_another_attempt_for_the_same_recipient(two_clinics) -> None:  # type: ignore[no-untyped-def]
    engine, (a, admin_a), _ = two_clinics
    job = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    expand(engine, job)
    ids = _messages(engine, a, job)
    _set_status(engine, ids[:2], MessageStatus.DELIVERED)
    _set_status(engine, ids[2:], MessageStatus.FAILED)
    with tenant_session(engine, a) as session:
        use_queue(session, RecordingQueue())
        retried = messaging.retry(session, admin_a, ids[2:])
    runtime = FakeRuntime(engine)
    assert jobs.complete_finished(runtime, runtime.clock()) == 0  # type: ignore[arg-type]  # the retry is moving
    with tenant_session(engine, a) as session:
        progress = jobs.progress(session, admin_a, job)
    assert progress.total == 3, "3 recipients, whatever the attempts"
    assert (progress.counts["delivered"], progress.counts["failed"], progress.counts["queued"]) == (2, 0, 1)

    _set_status(engine, [retried[0].message_id], MessageStatus.DELIVERED)
    assert jobs.complete_finished(runtime, runtime.clock()) == 1  # type: ignore[arg-type]
    with tenant_session(engine, a) as session:
        progress = jobs.progress(session, admin_a, job)
    assert (progress.counts["delivered"], progress.counts["failed"], progress.total) == (3, 0, 3)


def test_a_scheduled_job_is_sending_once_its_time_has_come(two_clinics) -> None:  # type: ignore[no-untyped-def]
    engine, (a, admin_a), _ = two_clinics
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    job_a = confirm(engine, admin_a, draft({"kind": "all"}), send_at_local=later.replace(tzinfo=None)
                    + dt.timedelta(hours=3)).bulk_job_id
    expand(engine, job_a)
    assert _status(engine, a, job_a) == BulkJobStatus.SCHEDULED
    runtime = FakeRuntime(engine)
    jobs.complete_finished(runtime, runtime.clock())  # type: ignore[arg-type]
    assert _status(engine, a, job_a) == BulkJobStatus.SCHEDULED
    jobs.complete_finished(runtime, later + dt.timedelta(days=1))  # type: ignore[arg-type]
    assert _status(engine, a, job_a) == BulkJobStatus.SENDING


def test_the_creator_is_told_once_that_a_job_ended(two_clinics) -> None:  # type: ignore[no-untyped-def]
    engine, (a, admin_a), (b, admin_b) = two_clinics
    colleague = make_user(engine, a, "colleague", Role.ADMIN)
    job_a = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    job_b = confirm(engine, admin_b, draft({"kind": "all"})).bulk_job_id
    expand(engine, job_a)
    expand(engine, job_b)
    _set_status(engine, _messages(engine, a, job_a)[:2], MessageStatus.DELIVERED)
    _set_status(engine, _messages(engine, a, job_a)[2:], MessageStatus.FAILED)
    _set_status(engine, _messages(engine, b, job_b), MessageStatus.DELIVERED)

    def endings(actor):  # type: ignore[no-untyped-def]
        with tenant_session(engine, actor.tenant_id) as session:
            return jobs.take_endings(session, actor)

    assert endings(admin_a) == [], "nothing has ended yet"
    runtime = FakeRuntime(engine)
    assert jobs.complete_finished(runtime, runtime.clock()) == 2  # type: ignore[arg-type]
    told = endings(admin_a)
    assert [(e.id, e.status) for e in told] == [(job_a, BulkJobStatus.COMPLETED)]
    assert (told[0].counts["delivered"], told[0].counts["failed"]) == (2, 1)
    assert told[0].summary == "2 delivered, 1 failed"
    assert endings(admin_a) == [], "told once"
    assert endings(colleague) == [], "only the creator is told"
    assert [e.id for e in endings(admin_b)] == [job_b], "each clinic's creator hears of their own job"

    # cancelled by a colleague: the creator is told; cancelled by the creator: they know already
    mine = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    theirs = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    with tenant_session(engine, a) as session:
        jobs.cancel(session, admin_a, mine)
    with tenant_session(engine, a) as session:
        jobs.cancel(session, colleague, theirs)
    assert [(e.id, e.status) for e in endings(admin_a)] == [(theirs, BulkJobStatus.CANCELLED)]
