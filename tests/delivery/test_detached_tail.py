"""A worker's delivery batch hands its last answers to a thread of their own (``detach_tail``), so the
worker takes its next job during that round trip; every answer is still recorded, once."""

from __future__ import annotations

import time

from sqlalchemy import select

from app.delivery import sender
from app.services.messaging import MessagingService
from db.enums import MessageStatus
from db.models import Message
from db.session import system_session
from tests.factories import make_tenant
from tests.peers.fake_twilio import Outcome


def _statuses(engine, bulk_job_id) -> list[MessageStatus]:  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        return [MessageStatus(s) for s in session.scalars(
            select(Message.status).where(Message.bulk_job_id == bulk_job_id))]


def test_the_batch_returns_before_the_last_answers_and_they_are_recorded_once(engine, make_runtime,
                                                                              fake_twilio) -> None:
    tenant, neighbour = make_tenant(engine), make_tenant(engine, "clinic-b")
    runtime, queue = make_runtime(fake_twilio)
    numbers = [f"+9665012345{n:02d}" for n in range(6)]
    ours = MessagingService(runtime).send_bulk_messages(
        recipients=numbers, message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant)
    theirs = MessagingService(runtime).send_bulk_messages(
        recipients=numbers, message="Clinic B: closed on Friday", channel="SMS", tenant_id=neighbour)
    fake_twilio.script(*[Outcome.success(latency_ms=800) for _ in numbers])
    with system_session(engine) as session:
        our_ids = {str(i) for i in session.scalars(select(Message.id).where(Message.bulk_job_id == ours.bulk_job_id))}
    [(job_id, ids)] = [(j, i) for j, i in queue.deliveries if set(i) & our_ids]

    started = time.monotonic()
    counts = sender.deliver_batch(runtime, ids, job_id, detach_tail=True)
    returned = time.monotonic() - started

    assert returned < 0.7, "the batch did not wait for the last answers"
    assert counts.get("sent", 0) < len(numbers)
    assert set(_statuses(engine, ours.bulk_job_id)) <= {MessageStatus.SENDING, MessageStatus.SENT}
    deadline = time.monotonic() + 10
    while set(_statuses(engine, ours.bulk_job_id)) != {MessageStatus.SENT} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _statuses(engine, ours.bulk_job_id) == [MessageStatus.SENT] * len(numbers)
    assert sorted(s.to for s in fake_twilio.sends) == sorted(numbers), "each once, only clinic A's"
    assert {s.params.get("Body") for s in fake_twilio.sends} == {"Your appointment is tomorrow"}
    assert set(_statuses(engine, theirs.bulk_job_id)) == {MessageStatus.QUEUED}


def test_without_detaching_the_batch_waits_and_counts_every_answer(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    result = MessagingService(runtime).send_bulk_messages(
        recipients=["+966501234567", "+966501234568"], message="Hi", channel="SMS", tenant_id=tenant)
    fake_twilio.script(Outcome.success(latency_ms=300), Outcome.success(latency_ms=300))
    [(job_id, ids)] = queue.deliveries
    assert sender.deliver_batch(runtime, ids, job_id)["sent"] == 2
    assert _statuses(engine, result.bulk_job_id) == [MessageStatus.SENT] * 2
