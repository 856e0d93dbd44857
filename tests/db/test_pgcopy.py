"""COPY of message rows stores exactly what the ORM insert of the same values stores (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, insert, select

from db.enums import Channel, Language, MessageClass, MessageStatus
from db.models import Message
from db.pgcopy import copy_chunks, copy_rows
from db.session import system_session, tenant_session
from tests.factories import make_tenant

TRICKY = "tab\there, new\nline, CR\r, back\\slash \\N, عربي «مرحبا»، emoji 🙂"


def _row(tenant_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    now = dt.datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=dt.UTC)
    row: dict[str, object] = {
        "id": uuid.uuid4(), "tenant_id": tenant_id, "patient_id": None, "channel": Channel.SMS,
        "recipient": "+966501234567", "language": Language.AR,
        "subject": "", "body": TRICKY, "variables": {"room": "٣", "note": TRICKY, "n": [1, None]},
        "status": MessageStatus.QUEUED, "status_reason": "", "segments": 2, "is_test": False, "urgent": True,
        "attempts": 0, "price": Decimal("0.05125"), "queued_at": now,
        "scheduled_at": now.astimezone(dt.timezone(dt.timedelta(hours=3))), "created_at": now, "updated_at": now,
    }
    row.update(overrides)
    return row


def test_copy_stores_what_the_orm_stores(pg_engine: Engine) -> None:
    tenant_id = make_tenant(pg_engine)
    copied, inserted = _row(tenant_id), _row(tenant_id)
    with system_session(pg_engine) as session:
        copy_rows(session.connection(), Message.__table__, [copied])
        session.execute(insert(Message), [inserted])
    columns = [c for c in Message.__table__.c if c.key != "id"]
    with system_session(pg_engine) as session:
        stored = {r[0]: r[1:] for r in session.execute(select(Message.id, *columns))}
    assert stored[copied["id"]] == stored[inserted["id"]]
    values = dict(zip([c.key for c in columns], stored[copied["id"]], strict=True))
    assert values["body"] == TRICKY and values["variables"]["note"] == TRICKY
    assert values["scheduled_at"] == copied["created_at"]  # the same instant, whatever the zone given
    assert values["message_class"] == MessageClass.SERVICE  # a column the rows left to its default


def test_a_naive_time_is_refused_and_nothing_is_written(pg_engine: Engine) -> None:
    tenant_id = make_tenant(pg_engine)
    with pytest.raises(ValueError, match="naive"), tenant_session(pg_engine, tenant_id) as session:
        copy_rows(session.connection(), Message.__table__,
                  [_row(tenant_id), _row(tenant_id, created_at=dt.datetime(2026, 11, 28, 9, 30))])
    with tenant_session(pg_engine, tenant_id) as session:
        assert session.scalar(select(Message.id)) is None


def test_chunks_stream_through_one_copy_and_a_failure_midway_writes_nothing(pg_engine: Engine) -> None:
    tenant_id = make_tenant(pg_engine)

    def chunks(fail: bool):  # type: ignore[no-untyped-def]
        yield [_row(tenant_id), _row(tenant_id)]
        yield []
        if fail:
            raise RuntimeError("the worker died while rendering")
        yield [_row(tenant_id)]

    with pytest.raises(RuntimeError, match="rendering"), tenant_session(pg_engine, tenant_id) as session:
        copy_chunks(session.connection(), Message.__table__, chunks(fail=True))
    with tenant_session(pg_engine, tenant_id) as session:  # row-level security applies: the staged path
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        assert copy_chunks(session.connection(), Message.__table__, chunks(fail=False)) == 3
        assert copy_chunks(session.connection(), Message.__table__, iter([[], []])) == 0
    with tenant_session(pg_engine, tenant_id) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 3
