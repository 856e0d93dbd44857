"""A claimed message is handed to the provider only within its claim's lease.

The sweeper takes a message still ``sending`` after ``SWEEP_SENDING_AFTER_SECONDS`` for its
worker's loss and, when the provider has no record of it, queues it again. A worker that claimed
it and then stalled (starved of CPU, or waiting behind the row locks of a worker machine that
vanished mid-transaction) must not send it afterwards: that was a second text to the patient,
found by bench/bench_multihost.py when it took a worker host away mid-send.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.config import Settings
from app.delivery import sender, sweeper
from app.services.messaging import MessagingService
from db.enums import MessageStatus
from db.models import Message
from db.session import system_session
from db.types import utcnow
from tests.factories import make_tenant


def test_the_lease_ends_well_before_the_sweeper_may_take_the_message(engine, make_runtime) -> None:
    runtime, _ = make_runtime(sweep_sending_after_seconds=120, provider_timeout_seconds=15)
    assert sender.claim_lease(runtime.settings) == dt.timedelta(seconds=52.5)


def test_a_worker_that_stalls_past_its_lease_leaves_the_message_to_the_sweeper(engine, make_runtime,
                                                                                fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio, sweep_sending_after_seconds=60, provider_timeout_seconds=10)
    offset = dt.timedelta()
    runtime.clock = lambda: utcnow() + offset
    wait_for_slot = runtime.limiter.wait_for_slot
    swept: list[sweeper.SweepReport] = []

    def stall_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        """The first request's thread stalls past the sweeper's threshold; the sweeper runs meanwhile."""
        nonlocal offset
        wait_for_slot(*args, **kwargs)
        if not swept:
            offset = dt.timedelta(seconds=61)
            swept.append(sweeper.run_sweep(runtime))

    runtime.limiter.wait_for_slot = stall_once  # type: ignore[method-assign]
    result = MessagingService(runtime).send_bulk_messages(
        recipients=["+966501234567"], message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant)
    outcomes = queue.drain(runtime)  # the stalled job, then the one the sweeper queued again

    assert swept[0].requeued == 1  # the provider had no record of it: queued again
    assert len(fake_twilio.sends) == 1  # sent once, by the second job; the stalled worker never sent it
    assert outcomes.get("claim_expired") == 1 and outcomes.get("sent") == 1
    with system_session(engine) as session:
        [status] = session.scalars(select(Message.status).where(Message.bulk_job_id == result.bulk_job_id))
    assert MessageStatus(status) == MessageStatus.SENT


def test_a_sweeper_threshold_within_the_provider_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="SWEEP_SENDING_AFTER_SECONDS"):
        Settings(sweep_sending_after_seconds=10, provider_timeout_seconds=15)
