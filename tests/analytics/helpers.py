"""Building message histories for the analytics tests: rows as the sender leaves them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select

from app.analytics.rollups import DIMENSIONS, MEASURES, STATUS_DIMENSIONS, raw_aggregate
from db.enums import Channel, MessageStatus
from db.models import Message, MessageRollup, MessageStatusRollup
from db.session import system_session
from tests.factories import system_connection


def add_message(engine: Engine, tenant_id: uuid.UUID, *, created_at: dt.datetime, status: MessageStatus,
                channel: Channel = Channel.SMS, template_id: uuid.UUID | None = None, is_test: bool = False,
                price: Decimal | None = None, segments: int = 1, error_code: str | None = None,
                sent_at: dt.datetime | None = None, delivered_at: dt.datetime | None = None,
                read_at: dt.datetime | None = None, bulk_job_id: uuid.UUID | None = None,
                provider_message_id: str | None = None, retry_of_id: uuid.UUID | None = None,
                updated_at: dt.datetime | None = None) -> uuid.UUID:
    message_id = uuid.uuid4()
    with system_session(engine) as session:
        session.execute(insert(Message), [{
            "id": message_id, "tenant_id": tenant_id, "channel": channel, "recipient": "+966501234567",
            "body": "Hello", "status": status, "template_id": template_id, "is_test": is_test, "price": price,
            "segments": segments, "error_code": error_code, "created_at": created_at, "sent_at": sent_at,
            "delivered_at": delivered_at, "read_at": read_at, "bulk_job_id": bulk_job_id,
            "provider_message_id": provider_message_id, "retry_of_id": retry_of_id,
            "updated_at": updated_at or dt.datetime.now(dt.UTC),
        }])
    return message_id


def _key(row: Any, dimensions: Sequence[str] = DIMENSIONS) -> tuple:
    return tuple(str(getattr(row, name)) for name in ("hour", *dimensions))


def _values(row: Any) -> tuple:
    return tuple(round(float(getattr(row, name)), 3) for name in MEASURES)


def rollup_rows(engine: Engine, tenant_id: uuid.UUID) -> dict[tuple, tuple]:
    with system_session(engine) as session:
        rows = session.execute(select(MessageRollup).where(MessageRollup.tenant_id == tenant_id)).scalars().all()
        keys = [_key(r) for r in rows]
        assert len(keys) == len(set(keys)), "a bucket has two rollup rows"
        return {_key(r): _values(r) for r in rows}


def raw_rows(engine: Engine, tenant_id: uuid.UUID) -> dict[tuple, tuple]:
    with system_connection(engine) as connection:
        rows = connection.execute(raw_aggregate(Message.tenant_id == tenant_id)).all()
        return {_key(r): _values(r) for r in rows}


def status_rollup_rows(engine: Engine, tenant_id: uuid.UUID) -> dict[tuple, tuple]:
    """``message_status_rollups`` of one clinic, keyed by (hour, channel, status)."""
    with system_session(engine) as session:
        rows = session.execute(select(MessageStatusRollup).where(MessageStatusRollup.tenant_id == tenant_id)
                               ).scalars().all()
        keys = [_key(r, STATUS_DIMENSIONS) for r in rows]
        assert len(keys) == len(set(keys)), "a (hour, channel, status) has two status rollup rows"
        return {_key(r, STATUS_DIMENSIONS): _values(r) for r in rows}


def raw_status_rows(engine: Engine, tenant_id: uuid.UUID) -> dict[tuple, tuple]:
    """The raw messages of one clinic grouped like ``message_status_rollups``."""
    with system_connection(engine) as connection:
        rows = connection.execute(raw_aggregate(Message.tenant_id == tenant_id,
                                                by=("tenant_id", "hour", *STATUS_DIMENSIONS))).all()
        return {_key(r, STATUS_DIMENSIONS): _values(r) for r in rows}


def hours_ago(now: dt.datetime, hours: float) -> dt.datetime:
    return now - dt.timedelta(hours=hours)


def statuses(values: Sequence[str]) -> list[MessageStatus]:
    return [MessageStatus(v) for v in values]


def add_template(engine: Engine, tenant_id: uuid.UUID, code: str = "reminder", channel: Channel = Channel.SMS,
                 name: str | None = None) -> uuid.UUID:
    from db.models import MessageTemplate

    with system_session(engine) as session:
        template = MessageTemplate(tenant_id=tenant_id, code=code, name=name or code.title(), channel=channel)
        session.add(template)
        session.flush()
        return template.id
