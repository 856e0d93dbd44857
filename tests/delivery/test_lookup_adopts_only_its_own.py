"""A lookup by recipient and body never settles a message with a Twilio SID another message holds.

Two clinics on the operator's Twilio account send the same text to the same number (a shared
patient, a common reminder wording). When a worker dies in ``sending`` before Twilio's SID was
recorded, the sweeper searches Twilio by recipient and body: it may meet the other clinic's message,
or an earlier message of the same clinic. Adopting that SID would mark a message delivered that was
never sent (and tie one clinic's message to another's). Each lost message is settled with a SID no
other message holds, or, when Twilio has none left for it, sent once.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, select, update

from app.delivery import sweeper
from app.services import messaging
from db.enums import MessageStatus
from db.models import Message
from db.session import system_session
from db.types import utcnow
from tests.factories import call, make_tenant

NUMBER, TEXT = "+966501234567", "Your appointment is tomorrow at 09:30."


def _send(engine: Engine, queue, tenant: uuid.UUID) -> uuid.UUID:  # type: ignore[no-untyped-def]
    return call(engine, tenant, messaging.send, "sms", recipient=NUMBER, text=TEXT, queue=queue).message_id


def _row(engine: Engine, message_id: uuid.UUID) -> tuple[MessageStatus, str | None]:
    with system_session(engine) as session:
        status, sid = session.execute(select(Message.status, Message.provider_message_id)
                                      .where(Message.id == message_id)).one()
        return MessageStatus(status), sid


def _lost_in_sending(engine: Engine, message_id: uuid.UUID, claimed_at: dt.datetime) -> None:
    with system_session(engine) as session:
        session.execute(update(Message).where(Message.id == message_id).values(
            status=MessageStatus.SENDING, provider_message_id=None, claimed_at=claimed_at))


def test_a_message_never_sent_is_not_settled_with_another_clinics_sid(engine, make_runtime, fake_twilio) -> None:
    runtime, queue = make_runtime(fake_twilio)
    clinic_a, clinic_b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    sent_a, sent_b = _send(engine, queue, clinic_a), _send(engine, queue, clinic_b)
    queue.drain(runtime)
    sids = {_row(engine, sent_a)[1], _row(engine, sent_b)[1]}
    assert len(sids) == 2 and None not in sids

    never_sent = _send(engine, queue, clinic_b)  # its worker died before the request left
    queue.lose_everything()
    _lost_in_sending(engine, never_sent, utcnow() - dt.timedelta(minutes=2))
    sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(minutes=10))
    queue.drain(runtime)

    status, sid = _row(engine, never_sent)
    assert sid not in sids, "settled with a SID another message holds"
    assert status == MessageStatus.SENT and sid is not None, "Twilio had no message of its own: sent once"
    assert len(fake_twilio.messages) == 3


def test_two_lost_look_alike_messages_each_get_their_own_sid(engine, make_runtime, fake_twilio) -> None:
    runtime, queue = make_runtime(fake_twilio)
    clinic_a, clinic_b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    lost = [_send(engine, queue, clinic_a), _send(engine, queue, clinic_b)]
    queue.drain(runtime)
    at_twilio = {m["sid"] for m in fake_twilio.messages}
    long_ago = utcnow() - dt.timedelta(minutes=5)
    for i, message_id in enumerate(lost):  # both reached Twilio; neither SID was recorded
        _lost_in_sending(engine, message_id, long_ago + dt.timedelta(seconds=i))

    sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(minutes=10))

    settled = [_row(engine, message_id) for message_id in lost]
    assert all(status == MessageStatus.SENT for status, _ in settled)
    assert {sid for _, sid in settled} == at_twilio, "one SID each, none shared"
    assert len(fake_twilio.messages) == 2, "nothing was sent twice"
