"""The message rollups: recomputed from the raw rows, by the hour, never patched in place.

``refresh`` is run by the worker's sweep loop (and the embedded runner). It reads which messages
changed since its watermark on ``messages.updated_at`` (every status change bumps it) and
recomputes only the (clinic, hour) buckets they belong to, from the messages themselves, so a
retry, a repeated or out-of-order callback can never make a rollup drift: a bucket is always what
a GROUP BY over its messages says. Each pass re-reads ``rollup_refresh_overlap_seconds`` before
the watermark, for writes that committed late with an earlier timestamp.

``rebuild`` recomputes everything (``python -m app rebuild-rollups``, and the first refresh).
Test messages are not counted. Whatever rewrites a bucket of ``message_rollups`` rewrites the
same bucket of ``message_status_rollups`` (its sum over template, bulk job and error code) from
it in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.sql.expression import ColumnElement

from app.analytics.sql import hour_floor, seconds_between
from db.models import LATENCY_BUCKET_BOUNDS, Message, MessageRollup, MessageStatusRollup, RollupWatermark
from db.session import SYSTEM, scoped_connection
from db.types import utcnow

log = logging.getLogger(__name__)
WATERMARK = "messages"
HOUR = dt.timedelta(hours=1)
_LOCK_KEY = 80_000_005  # PostgreSQL advisory lock: one refresher or rebuild at a time
_BUCKETS_PER_STATEMENT = 200
Bucket = tuple[uuid.UUID, dt.datetime]  # (clinic, UTC hour)

# The rollup's grain besides tenant and hour.
DIMENSIONS: tuple[str, ...] = ("channel", "status", "template_id", "bulk_job_id", "error_code")
STATUS_DIMENSIONS: tuple[str, ...] = ("channel", "status")  # the grain of message_status_rollups
LATENCY_COLUMNS: tuple[str, ...] = tuple(f"latency_b{i}" for i in range(len(LATENCY_BUCKET_BOUNDS) + 1))
MEASURES: tuple[str, ...] = ("messages", "segments", "cost", "read", "timed", "latency_seconds", *LATENCY_COLUMNS)


def _latency() -> ColumnElement[Any]:
    """Seconds from hand-over to the provider (or the claim, when no hand-over was recorded) to delivery."""
    start = func.coalesce(Message.sent_at, Message.claimed_at, Message.created_at)
    latency = seconds_between(start, Message.delivered_at)
    return case((latency < 0, 0.0), else_=latency)  # a clock step backwards counts as instant


def raw_measures() -> dict[str, ColumnElement[Any]]:
    """Each rollup measure as an aggregate over ``messages``."""
    timed = Message.delivered_at.is_not(None)
    latency = _latency()
    measures: dict[str, ColumnElement[Any]] = {
        "messages": func.count(),
        "segments": func.coalesce(func.sum(Message.segments), 0),
        "cost": func.coalesce(func.sum(Message.price), 0),
        "read": func.coalesce(func.sum(case((Message.read_at.is_not(None), 1), else_=0)), 0),
        "timed": func.coalesce(func.sum(case((timed, 1), else_=0)), 0),
        "latency_seconds": func.coalesce(func.sum(case((timed, latency), else_=0.0)), 0.0),
    }
    lower: float | None = None
    for column, upper in zip(LATENCY_COLUMNS, (*LATENCY_BUCKET_BOUNDS, None), strict=True):
        conditions = [timed]
        if lower is not None:
            conditions.append(latency >= lower)
        if upper is not None:
            conditions.append(latency < upper)
        measures[column] = func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)
        lower = upper
    return measures


def raw_dimension(name: str) -> ColumnElement[Any]:
    """A rollup dimension as an expression over ``messages`` (``hour`` included)."""
    if name == "hour":
        return hour_floor(Message.created_at)
    if name == "tenant_id":
        return Message.tenant_id
    return getattr(Message, name)


def raw_aggregate(*conditions: ColumnElement[bool], by: Sequence[str] = ("tenant_id", "hour", *DIMENSIONS),
                  keys: dict[str, ColumnElement[Any]] | None = None, measures: Sequence[str] = MEASURES) -> Select:
    """Rollup-shaped rows straight from ``messages`` (test messages left out), grouped ``by`` (or ``keys``)."""
    keys = keys if keys is not None else {name: raw_dimension(name) for name in by}
    sums = [expr.label(name) for name, expr in raw_measures().items() if name in measures]
    return (select(*[expr.label(name) for name, expr in keys.items()], *sums)
            .where(Message.is_test.is_(False), *conditions).group_by(*keys.values()))


def _insert_from(statement: Select) -> Any:
    columns = ["tenant_id", "hour", *DIMENSIONS, *MEASURES]
    return insert(MessageRollup.__table__).from_select(columns, statement)


def _insert_status_rollups(connection: Connection, *conditions: ColumnElement[bool]) -> None:
    """Write ``message_status_rollups`` for the ``message_rollups`` rows matching ``conditions``."""
    fine = MessageRollup.__table__
    keys = [fine.c[name] for name in ("tenant_id", "hour", *STATUS_DIMENSIONS)]
    sums = select(*keys, *[func.sum(fine.c[name]).label(name) for name in MEASURES]).where(*conditions) \
        .group_by(*keys).order_by(fine.c.tenant_id, fine.c.hour)
    columns = ["tenant_id", "hour", *STATUS_DIMENSIONS, *MEASURES]
    connection.execute(insert(MessageStatusRollup.__table__).from_select(columns, sums))


@dataclass(frozen=True)
class RefreshReport:
    buckets: int  # (clinic, hour) buckets recomputed
    rebuilt: bool  # everything was recomputed (no watermark yet)
    skipped: bool = False  # another refresher held the lock


def _lock(connection: Connection, *, wait: bool) -> bool:
    if connection.dialect.name != "postgresql":
        return True
    if wait:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        return True
    return bool(connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}))


def _set_watermark(connection: Connection, at: dt.datetime) -> None:
    table = RollupWatermark.__table__
    if connection.execute(table.update().where(table.c.name == WATERMARK).values(watermark=at)).rowcount == 0:
        connection.execute(table.insert().values(name=WATERMARK, watermark=at))


def _rebuild(connection: Connection, now: dt.datetime, tenant_id: uuid.UUID | None) -> int:
    rollups, status_rollups = MessageRollup.__table__, MessageStatusRollup.__table__

    def scope(column: Any) -> list[ColumnElement[bool]]:
        return [column == tenant_id] if tenant_id is not None else []

    connection.execute(delete(rollups).where(*scope(rollups.c.tenant_id)))
    connection.execute(delete(status_rollups).where(*scope(status_rollups.c.tenant_id)))
    # in (clinic, hour) order: a dashboard's range of hours is then a few adjacent pages on disk
    aggregate = raw_aggregate(*scope(Message.tenant_id))
    connection.execute(_insert_from(aggregate.order_by(text("1"), text("2"))))
    _insert_status_rollups(connection, *scope(rollups.c.tenant_id))
    if tenant_id is None:
        _set_watermark(connection, now)
    if connection.dialect.name == "postgresql":
        # fresh statistics: a hash aggregate, not a sort
        connection.execute(text("SELECT refresh_statistics('message_rollups'), "
                                "refresh_statistics('message_status_rollups')"))
    return int(connection.scalar(select(func.count()).select_from(rollups).where(*scope(rollups.c.tenant_id))) or 0)


def rebuild(engine: Engine, *, now: dt.datetime | None = None, tenant_id: uuid.UUID | None = None) -> int:
    """Recompute every rollup (of one clinic, or of all); the number of rollup rows written."""
    now = now or utcnow()
    with scoped_connection(engine, SYSTEM) as connection:  # rollups span clinics: counts only
        _lock(connection, wait=True)
        return _rebuild(connection, now, tenant_id)


def refresh_quietly(engine: Engine, overlap_seconds: float) -> RefreshReport | None:
    """``refresh`` for the worker loops: a failure is logged and retried on the next pass."""
    try:
        return refresh(engine, overlap_seconds=overlap_seconds)
    except Exception:  # keep sweeping; the next pass recomputes whatever this one missed
        log.exception("rollup refresh failed")
        return None


def recompute(connection: Connection, buckets: Sequence[Bucket]) -> None:
    """Replace the rollups of these (clinic, hour) buckets with a fresh count of their messages."""
    rollups, status_rollups = MessageRollup.__table__, MessageStatusRollup.__table__
    for start in range(0, len(buckets), _BUCKETS_PER_STATEMENT):
        part = list(buckets[start:start + _BUCKETS_PER_STATEMENT])
        connection.execute(delete(rollups).where(tuple_(rollups.c.tenant_id, rollups.c.hour).in_(part)))
        connection.execute(delete(status_rollups).where(
            tuple_(status_rollups.c.tenant_id, status_rollups.c.hour).in_(part)))
        in_buckets = or_(*[
            and_(Message.tenant_id == tenant, Message.created_at >= hour, Message.created_at < hour + HOUR)
            for tenant, hour in part
        ])
        connection.execute(_insert_from(raw_aggregate(in_buckets)))
        _insert_status_rollups(connection, tuple_(rollups.c.tenant_id, rollups.c.hour).in_(part))


def touched_buckets(connection: Connection, since: dt.datetime, until: dt.datetime) -> list[Bucket]:
    """The (clinic, hour of creation) of every message changed in (since, until]."""
    hour = hour_floor(Message.created_at)
    rows = connection.execute(
        select(Message.tenant_id, hour).where(Message.updated_at > since, Message.updated_at <= until)
        .group_by(Message.tenant_id, hour)
    ).all()
    return sorted((tenant, at) for tenant, at in rows)


def refresh(engine: Engine, *, overlap_seconds: float = 120.0, now: dt.datetime | None = None) -> RefreshReport:
    """Bring the rollups up to date with the messages changed since the last pass."""
    now = now or utcnow()
    with scoped_connection(engine, SYSTEM) as connection:  # rollups span clinics: counts only
        if not _lock(connection, wait=False):
            return RefreshReport(0, rebuilt=False, skipped=True)
        watermark = connection.scalar(
            select(RollupWatermark.watermark).where(RollupWatermark.name == WATERMARK))
        if watermark is None:
            _rebuild(connection, now, None)
            return RefreshReport(0, rebuilt=True)
        buckets = touched_buckets(connection, watermark - dt.timedelta(seconds=overlap_seconds), now)
        recompute(connection, buckets)
        _set_watermark(connection, max(now, watermark))
        return RefreshReport(len(buckets), rebuilt=False)
