"""Many status reports applied together behave exactly like one at a time: forward only, once."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import Engine, func, select

from app.delivery.status_batch import StatusReport, apply_many
from db.enums import Channel, MessageStatus
from db.models import Message, MessageLog
from db.session import system_session
from tests.factories import make_tenant


def _messages(engine: Engine, n: int, status: MessageStatus = MessageStatus.SENT) -> list[Message]:
    tenant = make_tenant(engine)
    with system_session(engine) as session:
        rows = [Message(tenant_id=tenant, channel=Channel.SMS, recipient=f"+9665012345{i:02d}", body="x",
                        status=status, provider_message_id=f"SM{uuid.uuid4().hex}") for i in range(n)]
        session.add_all(rows)
        session.flush()
        session.expunge_all()
        return rows


def _state(engine: Engine, message: Message) -> tuple[MessageStatus, int]:
    with system_session(engine) as session:
        status = session.scalar(select(Message.status).where(Message.id == message.id))
        logs = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.message_id == message.id))
        return MessageStatus(status), logs


def test_a_batch_with_repeats_and_late_reports_moves_forward_only(engine: Engine) -> None:
    a, b, c = _messages(engine, 3)
    reports = [
        StatusReport(a.provider_message_id, MessageStatus.DELIVERED),
        StatusReport(a.provider_message_id, MessageStatus.SENT),  # late
        StatusReport(a.provider_message_id, MessageStatus.DELIVERED),  # repeat
        StatusReport(b.provider_message_id, MessageStatus.READ),  # read without delivered
        StatusReport(b.provider_message_id, MessageStatus.DELIVERED),
        StatusReport(c.provider_message_id, MessageStatus.UNDELIVERED, error_code="30003"),
        StatusReport("SMunknown", MessageStatus.DELIVERED),
    ]
    outcomes = apply_many(engine, reports)
    assert outcomes == ["applied", "duplicate", "duplicate", "applied", "duplicate", "applied", "unknown_message"]
    assert _state(engine, a) == (MessageStatus.DELIVERED, 1)
    assert _state(engine, b) == (MessageStatus.READ, 1)
    assert _state(engine, c) == (MessageStatus.UNDELIVERED, 1)
    with system_session(engine) as session:
        row = session.get(Message, c.id)
        assert row.error_code == "30003" and "unreachable" in row.status_reason
        assert row.finished_at is not None
    assert apply_many(engine, reports[:1]) == ["duplicate"]


def test_price_is_filled_in_and_our_own_id_finds_an_unrecorded_message(engine: Engine) -> None:
    [message] = _messages(engine, 1, MessageStatus.SENDING)
    with system_session(engine) as session:
        session.get(Message, message.id).provider_message_id = None
    report = StatusReport("SMlate", MessageStatus.DELIVERED, price=Decimal("0.0395"), price_unit="USD",
                          message_id=message.id)
    assert apply_many(engine, [report]) == ["applied"]
    with system_session(engine) as session:
        row = session.get(Message, message.id)
        assert (row.status, row.provider_message_id, str(row.price)) == (MessageStatus.DELIVERED, "SMlate",
                                                                         "0.03950")
