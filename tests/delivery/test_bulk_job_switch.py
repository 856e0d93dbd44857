"""The job-level switch (issue 18): pause and cancel change the job, not its messages, and the claim
that takes messages for sending honours it, so nothing of a paused or cancelled job reaches the
provider after the call returns, while the other clinic's job goes on."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, func, select

from app.delivery import sweeper
from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from app.services.bulk import expansion, jobs
from app.services.queueing import use_queue
from db.enums import MessageStatus, Role
from db.models import Message
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import make_tenant, make_user
from tests.peers.fake_twilio import FakeTwilio
from tests.services.test_bulk_send import add_patients, confirm, draft


@pytest.fixture
def world(engine: Engine, fake_twilio: FakeTwilio):  # type: ignore[no-untyped-def]
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    add_patients(engine, a, 6)
    add_patients(engine, b, 6)  # the same numbers in the other clinic
    admin_a, admin_b = make_user(engine, a, "amira", Role.ADMIN), make_user(engine, b, "bushra", Role.ADMIN)
    settings = delivery_settings(engine, fake_twilio)
    queue = RecordingQueue()
    runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    job_a = confirm(engine, admin_a, draft({"kind": "all"})).bulk_job_id
    job_b = confirm(engine, admin_b, draft({"kind": "all"})).bulk_job_id
    expansion.expand(runtime, job_a)
    expansion.expand(runtime, job_b)
    return engine, runtime, queue, (a, admin_a, job_a), (b, admin_b, job_b)


def _count(engine: Engine, clinic: uuid.UUID, job_id: uuid.UUID, status: MessageStatus) -> int:
    with tenant_session(engine, clinic) as session:
        return int(session.scalar(select(func.count()).where(Message.bulk_job_id == job_id,
                                                             Message.status == status)) or 0)


def test_nothing_of_a_paused_job_is_sent_until_it_is_resumed(world, fake_twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, admin_a, job_a), (b, _admin_b, job_b) = world
    with tenant_session(engine, a) as session:
        assert jobs.pause(session, admin_a, job_a) == 6

    totals = queue.drain(runtime)  # the delivery jobs of both clinics run, as a worker runs them
    assert totals.get("sent") == 6, totals
    assert {m["to"] for m in fake_twilio.messages} and _count(engine, b, job_b, MessageStatus.SENT) == 6
    assert _count(engine, a, job_a, MessageStatus.QUEUED) == 6, "A's messages were not claimed"
    assert len(fake_twilio.messages) == 6, "no provider request for the paused job"
    sweeper.run_sweep(runtime, now=runtime.clock() + dt.timedelta(hours=1))
    assert queue.deliveries == [], "the sweeper does not hand a paused job's messages out again"

    with tenant_session(engine, a) as session:
        use_queue(session, queue)
        assert jobs.resume(session, admin_a, job_a) == 6
    queue.drain(runtime)
    assert _count(engine, a, job_a, MessageStatus.SENT) == 6
    assert len(fake_twilio.messages) == 12, "each message of both jobs sent once"


def test_nothing_of_a_cancelled_job_is_sent_and_its_messages_settle(world, fake_twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    engine, runtime, queue, (a, admin_a, job_a), (b, _admin_b, job_b) = world
    with tenant_session(engine, a) as session:
        assert jobs.cancel(session, admin_a, job_a) == 6
    queue.drain(runtime)
    assert len(fake_twilio.messages) == 6 and _count(engine, b, job_b, MessageStatus.SENT) == 6
    assert jobs.settle_cancelled(runtime, runtime.clock()) == 6
    assert _count(engine, a, job_a, MessageStatus.CANCELLED) == 6
    assert _count(engine, b, job_b, MessageStatus.CANCELLED) == 0
