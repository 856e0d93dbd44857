"""A bulk job's progress comes from counters the database keeps as messages move (issue 18), not
from scanning the job: after every step of the real path (the worker's expansion, delivery to the
loopback Twilio with some failures, status callbacks, a staff retry, an SMS fallback, a cancel
settled in the background) the counters equal a count of each recipient's last attempt, in both
clinics, and the progress panel reads no message row."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import aliased

from app.delivery.callbacks import apply_provider_status
from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.services import explorer, messaging
from app.services.bulk import expansion, jobs, wizard
from app.services.bulk.wizard import Draft
from db.enums import Channel, MessageStatus, Role
from db.models import BulkJob, BulkJobCount, Message
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import call, make_tenant, make_user, system_connection
from tests.peers.fake_twilio import FakeTwilio
from tests.peers.fake_twilio.scripting import Outcome
from tests.services.test_bulk_send import add_patients

PATIENTS = 6


def scanned(engine: Engine, clinic: uuid.UUID, job_id: uuid.UUID) -> dict[tuple[Channel, MessageStatus], int]:
    """What the counters must say: every message of the job no later attempt replaced, counted."""
    later = aliased(Message)
    with tenant_session(engine, clinic) as session:
        rows = session.execute(select(Message.channel, Message.status).where(
            Message.bulk_job_id == job_id, ~select(later.id).where(later.retry_of_id == Message.id).exists())).all()
    return dict(Counter((Channel(c), MessageStatus(s)) for c, s in rows))


def counted(engine: Engine, clinic: uuid.UUID, job_id: uuid.UUID) -> dict[tuple[Channel, MessageStatus], int]:
    with tenant_session(engine, clinic) as session:
        return jobs.status_counts(session, job_id)


@pytest.fixture
def clinics(engine: Engine, fake_twilio: FakeTwilio):  # type: ignore[no-untyped-def]
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    add_patients(engine, a, PATIENTS)
    add_patients(engine, b, PATIENTS)  # the same numbers and names in the other clinic
    admins = {a: make_user(engine, a, "amira", Role.ADMIN), b: make_user(engine, b, "bushra", Role.ADMIN)}
    queue = RecordingQueue()
    settings = delivery_settings(engine, fake_twilio)
    runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    return engine, runtime, queue, (a, b), admins


def send(engine: Engine, runtime: Runtime, queue: RecordingQueue, clinic: uuid.UUID, admin, channel: Channel,  # type: ignore[no-untyped-def]
         key: str) -> uuid.UUID:
    draft = Draft(idempotency_key=key, audience={"kind": "all"}, channel=channel,
                  body_en="The clinic is closed on Friday. {{ clinic_name }}")
    with tenant_session(engine, clinic) as session:
        review = wizard.dry_run(session, admin, draft)
    with tenant_session(engine, clinic) as session:
        session.info["queue"] = queue
        created = wizard.confirm(session, admin, draft, typed_count=review.audience_size)
    expansion.expand(runtime, created.bulk_job_id)  # the worker's job
    return created.bulk_job_id


def test_the_counters_follow_every_move_of_the_real_path_in_both_clinics(clinics, fake_twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, b), admins = clinics
    job_a = send(engine, runtime, queue, a, admins[a], Channel.SMS, "counters-a")
    job_b = send(engine, runtime, queue, b, admins[b], Channel.SMS, "counters-b")

    def agree() -> None:
        for clinic, job in ((a, job_a), (b, job_b)):
            assert counted(engine, clinic, job) == scanned(engine, clinic, job)

    assert sum(counted(engine, a, job_a).values()) == PATIENTS
    assert counted(engine, a, job_a) == {(Channel.SMS, MessageStatus.QUEUED): PATIENTS}
    agree()

    # the provider refuses two of A's numbers for good; B shares those numbers and is not refused
    with tenant_session(engine, a) as session:
        refused = list(session.scalars(select(Message.recipient).where(Message.bulk_job_id == job_a)
                                       .order_by(Message.recipient).limit(2)))
    fake_twilio.set_responder(lambda form: Outcome.error(21211) if form.get("To") in refused
                              and "clinic-a" in form.get("Body", "").lower() else None)
    queue.drain(runtime)  # the delivery jobs, as the worker runs them
    fake_twilio.set_responder(None)
    agree()
    assert counted(engine, a, job_a)[(Channel.SMS, MessageStatus.FAILED)] == 2

    # status callbacks: A's sent ones delivered, one of B's undelivered
    with tenant_session(engine, a) as session:
        sent_a = list(session.scalars(select(Message.provider_message_id).where(
            Message.bulk_job_id == job_a, Message.status == MessageStatus.SENT)))
    with tenant_session(engine, b) as session:
        sent_b = list(session.scalars(select(Message.provider_message_id).where(
            Message.bulk_job_id == job_b, Message.status == MessageStatus.SENT)))
    for sid in sent_a:
        apply_provider_status(engine, provider_message_id=sid, status=MessageStatus.DELIVERED)
        apply_provider_status(engine, provider_message_id=sid, status=MessageStatus.DELIVERED)  # a repeat
    apply_provider_status(engine, provider_message_id=sent_b[0], status=MessageStatus.UNDELIVERED, error_code="30003")
    agree()

    # staff retry A's two failures: the same two recipients, not two more
    with tenant_session(engine, a) as session:
        failed = list(session.scalars(select(Message.id).where(
            Message.bulk_job_id == job_a, Message.status == MessageStatus.FAILED)))
    call(engine, admins[a], messaging.retry, failed, queue=queue)
    call(engine, admins[a], messaging.retry, failed, queue=queue)  # a double click
    agree()
    assert sum(counted(engine, a, job_a).values()) == PATIENTS
    queue.drain(runtime)
    agree()
    counts = counted(engine, a, job_a)
    assert counts.get((Channel.SMS, MessageStatus.FAILED), 0) == 0
    assert counts[(Channel.SMS, MessageStatus.DELIVERED)] == PATIENTS - 2
    assert counts[(Channel.SMS, MessageStatus.SENT)] == 2
    progress = call(engine, admins[a], jobs.progress, job_a)
    assert progress.total == PATIENTS and progress.counts["delivered"] == PATIENTS - 2


def test_a_cancel_settled_in_the_background_moves_the_counts(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, b), admins = clinics
    job_a = send(engine, runtime, queue, a, admins[a], Channel.SMS, "cancel-a")
    job_b = send(engine, runtime, queue, b, admins[b], Channel.SMS, "cancel-b")
    call(engine, admins[a], jobs.cancel, job_a)
    assert jobs.settle_cancelled(runtime, runtime.clock()) == PATIENTS
    assert counted(engine, a, job_a) == {(Channel.SMS, MessageStatus.CANCELLED): PATIENTS}
    assert counted(engine, b, job_b) == {(Channel.SMS, MessageStatus.QUEUED): PATIENTS}  # untouched
    assert counted(engine, a, job_a) == scanned(engine, a, job_a)


def test_progress_reads_the_counters_not_the_jobs_messages(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, _b), admins = clinics
    job_a = send(engine, runtime, queue, a, admins[a], Channel.SMS, "reads-a")
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        progress = call(engine, admins[a], jobs.progress, job_a)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert progress.counts["queued"] == PATIENTS
    assert any("bulk_job_counts" in s for s in statements)
    assert not any(" messages" in s.replace("\n", " ") for s in statements), statements


def test_a_clinic_cannot_read_or_write_another_clinics_counters(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, b), admins = clinics
    job_b = send(engine, runtime, queue, b, admins[b], Channel.SMS, "private-b")
    with tenant_session(engine, a) as session:
        assert session.scalars(select(BulkJobCount).where(BulkJobCount.bulk_job_id == job_b)).all() == []
        assert jobs.status_counts(session, job_b) == {}
    with pytest.raises(Exception, match="does not exist"):
        call(engine, admins[a], jobs.progress, job_b)


def test_the_explorer_says_how_far_a_job_still_being_prepared_has_come(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, b), admins = clinics
    job_a = send(engine, runtime, queue, a, admins[a], Channel.SMS, "preparing-a")
    analyst_a = make_user(engine, a, "anwar", Role.ANALYST)
    analyst_b = make_user(engine, b, "basim", Role.ANALYST)
    assert call(engine, analyst_a, explorer.bulk_job_preparation, job_a) is None, "prepared: nothing to say"
    with system_connection(engine) as connection:  # as if the worker had written the first chunk only
        connection.execute(update(BulkJob).where(BulkJob.id == job_a).values(prepared_at=None,
                                                                            total_recipients=40_000))
    preparing = call(engine, analyst_a, explorer.bulk_job_preparation, job_a)
    assert (preparing.written, preparing.expected) == (PATIENTS, 40_000)
    assert call(engine, analyst_b, explorer.bulk_job_preparation, job_a) is None, "another clinic's job"


def test_one_statement_moving_some_rows_and_touching_others_counts_only_the_moves(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, b), admins = clinics
    job_a = send(engine, runtime, queue, a, admins[a], Channel.SMS, "mixed-a")
    job_b = send(engine, runtime, queue, b, admins[b], Channel.SMS, "mixed-b")
    with tenant_session(engine, a) as session:
        ids = list(session.scalars(select(Message.id).where(Message.bulk_job_id == job_a).order_by(Message.id)))
    with system_connection(engine) as connection:  # half move, then every row of both clinics is touched
        connection.execute(update(Message).where(Message.id.in_(ids[:3])).values(status=MessageStatus.FAILED))
        connection.execute(update(Message).values(error_code="x"))
    assert counted(engine, a, job_a) == {(Channel.SMS, MessageStatus.FAILED): 3,
                                         (Channel.SMS, MessageStatus.QUEUED): PATIENTS - 3}
    assert counted(engine, b, job_b) == {(Channel.SMS, MessageStatus.QUEUED): PATIENTS}
    for clinic, job in ((a, job_a), (b, job_b)):
        assert counted(engine, clinic, job) == scanned(engine, clinic, job)
