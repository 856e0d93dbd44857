"""The rollups always equal a GROUP BY over the raw messages, whatever order things happen in."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from app.analytics import rollups
from app.delivery.callbacks import apply_provider_status
from app.delivery.lifecycle import transition
from app.delivery.status_batch import StatusReport, apply_many
from db.enums import Channel, MessageStatus
from db.models import Message, MessageRollup
from db.session import system_session, tenant_session
from tests.analytics.helpers import (
    add_message,
    add_template,
    raw_rows,
    raw_status_rows,
    rollup_rows,
    status_rollup_rows,
)
from tests.factories import make_tenant

REPORTED = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED,
            MessageStatus.UNDELIVERED]
ERRORS = [None, "30003", "30005", "21610"]

send = st.tuples(st.just("send"), st.integers(0, 1), st.integers(0, 30), st.sampled_from(list(Channel)),
                 st.integers(0, 2), st.booleans())
callback = st.tuples(st.just("callback"), st.integers(0, 50), st.sampled_from(REPORTED), st.sampled_from(ERRORS),
                     st.sampled_from([None, Decimal("0.0395"), Decimal("0.079")]), st.booleans())
retry = st.tuples(st.just("retry"), st.integers(0, 50))
refresh = st.tuples(st.just("refresh"))
history = st.lists(st.one_of(send, send, callback, callback, callback, retry, refresh), min_size=1, max_size=40)


def _send(engine: Engine, tenant: uuid.UUID, created_at: dt.datetime, channel: Channel, template: uuid.UUID | None,
          is_test: bool, retry_of: uuid.UUID | None = None) -> tuple[uuid.UUID, str]:
    """A message that went queued -> sending -> sent, the way the sender moves it."""
    sid = f"SM{uuid.uuid4().hex}"
    mid = add_message(engine, tenant, created_at=created_at, status=MessageStatus.QUEUED, channel=channel,
                      template_id=template, is_test=is_test, retry_of_id=retry_of, segments=0)
    with system_session(engine) as session:
        transition(session, mid, MessageStatus.SENDING, values={"claimed_at": created_at})
        transition(session, mid, MessageStatus.SENT, values={"provider_message_id": sid, "segments": 1})
    return mid, sid


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=history)
def test_rollups_equal_the_raw_aggregate_after_any_history(engine: Engine, steps: list[tuple]) -> None:
    now = dt.datetime.now(dt.UTC)
    tenants = [make_tenant(engine, f"c-{uuid.uuid4().hex[:10]}") for _ in range(2)]
    templates = {t: [add_template(engine, t, "a"), add_template(engine, t, "b"), None] for t in tenants}
    sent: list[tuple[uuid.UUID, uuid.UUID, str]] = []  # (tenant, message, provider id)
    rollups.refresh(engine, overlap_seconds=0)
    for step in steps:
        kind = step[0]
        if kind == "send":
            _, t, hours_back, channel, template, is_test = step
            created = now - dt.timedelta(hours=hours_back, minutes=hours_back % 7 * 8)
            mid, sid = _send(engine, tenants[t], created, channel, templates[tenants[t]][template], is_test)
            sent.append((tenants[t], mid, sid))
        elif kind == "callback" and sent:
            _, index, status, code, price, batched = step
            tenant, mid, sid = sent[index % len(sent)]
            code = code if status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED) else None
            if batched:
                apply_many(engine, [StatusReport(sid, status, error_code=code, price=price, price_unit="USD")])
            else:
                apply_provider_status(engine, provider_message_id=sid, status=status, error_code=code, price=price,
                                      price_unit="USD")
        elif kind == "retry" and sent:
            tenant, mid, _sid = sent[step[1] % len(sent)]
            with system_session(engine) as session:
                original = session.get(Message, mid)
                assert original is not None
                failed = original.status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
                channel, template, is_test = Channel(original.channel), original.template_id, original.is_test
            if failed:
                retried = _send(engine, tenant, dt.datetime.now(dt.UTC), channel, template, is_test, retry_of=mid)
                sent.append((tenant, *retried))
        elif kind == "refresh":
            rollups.refresh(engine, overlap_seconds=0)
    rollups.refresh(engine, overlap_seconds=0)
    for tenant in tenants:
        assert rollup_rows(engine, tenant) == raw_rows(engine, tenant)
        assert status_rollup_rows(engine, tenant) == raw_status_rows(engine, tenant)


def test_the_first_refresh_builds_everything_then_only_changed_hours(engine: Engine) -> None:
    now = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)
    tenant = make_tenant(engine)
    old = add_message(engine, tenant, created_at=now - dt.timedelta(days=3), status=MessageStatus.SENT,
                      provider_message_id="SMold", updated_at=now - dt.timedelta(days=3))
    add_message(engine, tenant, created_at=now - dt.timedelta(hours=2), status=MessageStatus.DELIVERED,
                updated_at=now - dt.timedelta(hours=2))

    first = rollups.refresh(engine, now=now)
    assert first.rebuilt
    assert rollup_rows(engine, tenant) == raw_rows(engine, tenant)

    later = now + dt.timedelta(minutes=5)
    with system_session(engine) as session:
        transition(session, old, MessageStatus.DELIVERED, now=later - dt.timedelta(minutes=1))
    second = rollups.refresh(engine, overlap_seconds=0, now=later)
    assert (second.rebuilt, second.buckets) == (False, 1)  # only the hour of the message that changed
    assert rollup_rows(engine, tenant) == raw_rows(engine, tenant)
    assert rollups.refresh(engine, overlap_seconds=0, now=later + dt.timedelta(seconds=5)).buckets == 0


def test_a_write_that_commits_late_is_caught_by_the_overlap(engine: Engine) -> None:
    now = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)
    tenant = make_tenant(engine)
    rollups.refresh(engine, now=now)
    # stamped a few seconds before the last pass, committed after it
    add_message(engine, tenant, created_at=now - dt.timedelta(hours=1), status=MessageStatus.FAILED,
                updated_at=now - dt.timedelta(seconds=10))
    rollups.refresh(engine, overlap_seconds=60, now=now + dt.timedelta(seconds=5))
    assert rollup_rows(engine, tenant) == raw_rows(engine, tenant) != {}


def test_test_messages_are_not_counted_and_rebuild_matches(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    tenant = make_tenant(engine)
    add_message(engine, tenant, created_at=now, status=MessageStatus.DELIVERED, is_test=True)
    real = add_message(engine, tenant, created_at=now, status=MessageStatus.DELIVERED, price=Decimal("0.04"),
                       sent_at=now, delivered_at=now + dt.timedelta(seconds=12))
    assert rollups.rebuild(engine, tenant_id=tenant) == 1
    with tenant_session(engine, tenant) as session:
        row = session.execute(select(MessageRollup)).scalar_one()
        assert (row.messages, row.cost, row.timed, row.latency_b1) == (1, Decimal("0.04"), 1, 1)
        assert row.latency_seconds == pytest.approx(12.0)
        session.execute(update(Message).where(Message.id == real).values(status=MessageStatus.READ, read_at=now))
    rollups.refresh(engine, overlap_seconds=0)
    assert rollup_rows(engine, tenant) == raw_rows(engine, tenant)


def test_the_rebuild_rollups_command(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from app.config import get_settings
    from app.database import engine_for

    monkeypatch.setenv("DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    engine_for.cache_clear()
    tenant = make_tenant(sqlite_engine, "north")
    add_message(sqlite_engine, tenant, created_at=dt.datetime.now(dt.UTC), status=MessageStatus.DELIVERED)

    assert main(["rebuild-rollups"]) == 0
    assert "Rebuilt the message rollups of all clinics" in capsys.readouterr().out
    assert rollup_rows(sqlite_engine, tenant) == raw_rows(sqlite_engine, tenant) != {}
    assert status_rollup_rows(sqlite_engine, tenant) == raw_status_rows(sqlite_engine, tenant) != {}
    assert main(["rebuild-rollups", "--tenant", "north"]) == 0
    assert "(1 rollup rows)" in capsys.readouterr().out
    assert main(["rebuild-rollups", "--tenant", "nowhere"]) == 1
    assert capsys.readouterr().err.startswith("error:")
    get_settings.cache_clear()
    engine_for.cache_clear()
