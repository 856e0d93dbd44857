"""One provider's error never stops the sweeper: each message, each clinic and each step on its own.

Clinic A sends Saudi SMS through its own Twilio account; clinic B through the process-wide one.
Both have messages whose worker died in ``sending`` without recording Twilio's SID, so the
sweeper must find them with a list request (whose failure the SDK raises as its base
``TwilioException``). Clinic B also has a queued message whose job Redis lost and a retry that is
due. Whatever Twilio answers A's lookups (401 after A changed its credentials, 429, 500), B's
messages are re-enqueued and settled in the same pass, and A's are left for the next one.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, update

from app.delivery import sweeper
from app.providers.routing import SAUDI, RouteStep
from app.services import clinic_settings, messaging
from db.enums import Channel, MessageStatus
from db.models import Message
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call, make_tenant, make_user
from tests.peers.fake_twilio import FakeTwilio, Outcome

ACCOUNT_A, TOKEN_A = "AC" + "a1" * 16, "7a" * 16
KEY = Fernet.generate_key().decode()


def _send(engine: Engine, queue, tenant: uuid.UUID, number: str, text: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    return call(engine, tenant, messaging.send, "sms", recipient=number, text=text, queue=queue).message_id


def _as_if_the_worker_died_while_sending(engine: Engine, message_id: uuid.UUID, claimed_at: dt.datetime) -> None:
    with system_session(engine) as session:
        session.execute(update(Message).where(Message.id == message_id).values(
            status=MessageStatus.SENDING, provider_message_id=None, claimed_at=claimed_at))


def _status(engine: Engine, message_id: uuid.UUID) -> MessageStatus:
    with system_session(engine) as session:
        return MessageStatus(session.scalar(select(Message.status).where(Message.id == message_id)))


def _set_twilio_credentials(engine: Engine, clinic: uuid.UUID, admin, runtime, token: str) -> None:  # type: ignore[no-untyped-def]
    with tenant_session(engine, clinic) as session:
        clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": ACCOUNT_A, "auth_token": token},
                                        settings=runtime.settings)


@pytest.fixture
def two_clinics(engine: Engine, make_runtime, fake_twilio: FakeTwilio):  # type: ignore[no-untyped-def]
    """Clinic A (own Twilio account) and clinic B (process-wide), each with messages stuck in ``sending``;
    B also has a queued message of a lost job and a due retry."""
    runtime, queue = make_runtime(fake_twilio, credentials_key=KEY)
    fake_twilio.add_account(ACCOUNT_A, TOKEN_A)
    clinic_a, clinic_b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    admin_a = make_user(engine, clinic_a, "admin-a")
    _set_twilio_credentials(engine, clinic_a, admin_a, runtime, TOKEN_A)
    with tenant_session(engine, clinic_a) as session:
        clinic_settings.set_route(session, admin_a, Channel.SMS, SAUDI, [RouteStep("twilio", "+15005550006")])
    long_ago = utcnow() - dt.timedelta(hours=1)
    a_sending = [_send(engine, queue, clinic_a, f"+96650123456{i}", f"A reminder {i}") for i in range(3)]
    b_sending = _send(engine, queue, clinic_b, "+966501234570", "B reminder")
    b_retry = _send(engine, queue, clinic_b, "+966501234571", "B retry")
    fake_twilio.set_outcome_for_to("+966501234571", Outcome.error(20429))  # not processed: retried later
    queue.drain(runtime)
    fake_twilio.set_outcome_for_to("+966501234571", None)
    assert {fake_twilio.message(m["sid"])["account_sid"] for m in fake_twilio.messages[:3]} == {ACCOUNT_A}
    for i, message_id in enumerate(a_sending):  # A's come first in claim order
        _as_if_the_worker_died_while_sending(engine, message_id, long_ago + dt.timedelta(seconds=i))
    _as_if_the_worker_died_while_sending(engine, b_sending, long_ago + dt.timedelta(minutes=1))
    assert _status(engine, b_retry) == MessageStatus.QUEUED
    with system_session(engine) as session:  # its backoff is over
        session.execute(update(Message).where(Message.id == b_retry).values(next_attempt_at=long_ago))
    b_queued = _send(engine, queue, clinic_b, "+966501234572", "B queued")
    queue.lose_everything()  # the worker holding it was killed and Redis lost the job
    return runtime, queue, admin_a, {"a_sending": a_sending, "b_sending": b_sending, "b_retry": b_retry,
                                     "b_queued": b_queued}


@pytest.mark.parametrize("failure", ["401-after-A-changed-credentials", "429", "500"])
def test_a_failing_lookup_leaves_other_messages_and_clinics_to_be_settled(engine, two_clinics, fake_twilio,
                                                                          failure) -> None:
    runtime, queue, admin_a, ids = two_clinics
    if failure.startswith("401"):
        _set_twilio_credentials(engine, ids_clinic(engine, ids["a_sending"][0]), admin_a, runtime, "changed")
    else:
        fake_twilio.set_lookup_outcome(Outcome.error(20429 if failure == "429" else 20500))
    later = utcnow() + dt.timedelta(minutes=10)
    report = sweeper.run_sweep(runtime, now=later)

    assert report.notes == []  # no step failed
    assert set(queue.enqueued_ids) >= {str(ids["b_queued"]), str(ids["b_retry"])}
    assert all(_status(engine, m) == MessageStatus.SENDING for m in ids["a_sending"]), "left for the next pass"
    lookups = [r for r in fake_twilio.requests if r.endpoint == "messages.list"]
    assert lookups and all(r.http_status in (401, 429, 500) for r in lookups if r.account_sid == ACCOUNT_A)
    if failure.startswith("401"):  # only A's account refuses: B's message is settled in the same pass
        assert _status(engine, ids["b_sending"]) == MessageStatus.SENT
        assert report.recovered_sending == 1
        assert len([r for r in lookups if r.account_sid == ACCOUNT_A]) == sweeper.PROVIDER_FAILURES_PER_PASS
        _set_twilio_credentials(engine, ids_clinic(engine, ids["a_sending"][0]), admin_a, runtime, TOKEN_A)
    else:  # Twilio refuses every lookup: nothing is lost, every sending message waits
        assert _status(engine, ids["b_sending"]) == MessageStatus.SENDING
        fake_twilio.set_lookup_outcome(None)
    assert report.lookup_failed >= sweeper.PROVIDER_FAILURES_PER_PASS

    queue.drain(runtime)
    again = sweeper.run_sweep(runtime, now=later + dt.timedelta(seconds=5))
    assert again.notes == [] and again.lookup_failed == 0
    assert all(_status(engine, m) == MessageStatus.SENT for m in [*ids["a_sending"], ids["b_sending"]])
    assert _status(engine, ids["b_queued"]) == MessageStatus.SENT
    assert _status(engine, ids["b_retry"]) == MessageStatus.SENT
    assert len(fake_twilio.messages) == 6, "nothing was sent twice"


def ids_clinic(engine: Engine, message_id: uuid.UUID) -> uuid.UUID:
    with system_session(engine) as session:
        return session.scalar(select(Message.tenant_id).where(Message.id == message_id))


def test_a_failing_step_does_not_stop_the_next_ones(engine, two_clinics, fake_twilio, monkeypatch) -> None:
    runtime, queue, _admin, ids = two_clinics

    def broken(*_args):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database went away for this step")

    monkeypatch.setattr(sweeper, "promote_scheduled", broken)
    monkeypatch.setattr(sweeper, "_recover_sending", broken)
    report = sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(minutes=10))
    assert [note.split(" failed")[0] for note in report.notes] == ["promote scheduled", "recover sending"]
    assert set(queue.enqueued_ids) >= {str(ids["b_queued"]), str(ids["b_retry"])}


def test_an_unexpected_error_settling_one_message_skips_only_that_message(engine, two_clinics, fake_twilio,
                                                                        monkeypatch) -> None:
    runtime, _queue, _admin, ids = two_clinics
    first = ids["a_sending"][0]
    real = sweeper._lookup_and_settle

    def flaky(runtime, message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if message.id == first:
            raise KeyError("something no one expected")
        return real(runtime, message, *args, **kwargs)

    monkeypatch.setattr(sweeper, "_lookup_and_settle", flaky)
    report = sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(minutes=10))
    assert report.lookup_failed == 1 and report.recovered_sending == 3
    assert _status(engine, first) == MessageStatus.SENDING
    assert all(_status(engine, m) == MessageStatus.SENT for m in [*ids["a_sending"][1:], ids["b_sending"]])
