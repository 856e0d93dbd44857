"""Reading the aggregates: rollups for the closed hours, raw messages for the current hour only.

``grouped`` is the one way the dashboards read message statistics. Its raw part is bounded to
``created_at >= the start of the current hour`` (an index range on one clinic), so no screen
scans the message table beyond the last hour, however long the period. Groupings by time,
channel and status alone read the smaller ``message_status_rollups``; by template, bulk job or
error code (or with a template filter) the full ``message_rollups``.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.expression import ColumnElement

from app.analytics.rollups import MEASURES, raw_aggregate, raw_dimension
from app.analytics.sql import in_zone, local_day, local_hour, local_weekday
from app.errors import ValidationError
from db.enums import Channel
from db.models import Message, MessageRollup, MessageStatusRollup
from db.tenancy import TenantSession

MAX_PERIOD_DAYS = 400


def hour_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, ``start`` on the hour; ``timezone`` is the clinic's (for days and weekdays)."""

    start: dt.datetime
    end: dt.datetime
    timezone: str = "UTC"

    @classmethod
    def last_days(cls, days: int, *, now: dt.datetime, timezone: str = "UTC") -> Period:
        if not 1 <= days <= MAX_PERIOD_DAYS:
            raise ValidationError(f"Choose between 1 and {MAX_PERIOD_DAYS} days.", field="days")
        return cls(hour_start(now - dt.timedelta(days=days)), now, timezone)

    @classmethod
    def between_dates(cls, first: dt.date, last: dt.date, *, now: dt.datetime, timezone: str) -> Period:
        """From the start of ``first`` to the end of ``last`` in the clinic's time zone (not past now)."""
        if first > last:
            raise ValidationError("The start date is after the end date.", field="dates")
        if (last - first).days >= MAX_PERIOD_DAYS:
            raise ValidationError(f"Choose at most {MAX_PERIOD_DAYS} days.", field="dates")
        zone = zoneinfo.ZoneInfo(timezone)
        start = dt.datetime.combine(first, dt.time(), zone)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
        if start >= now:
            raise ValidationError("The period starts in the future.", field="dates")
        return cls(hour_start(start), min(end.astimezone(dt.UTC), now), timezone)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Filters:
    channel: Channel | None = None
    template_id: uuid.UUID | None = None


NO_FILTERS = Filters()


def _conditions(columns: Any, filters: Filters) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.channel is not None:
        conditions.append(columns.channel == filters.channel)
    if filters.template_id is not None:
        conditions.append(columns.template_id == filters.template_id)
    return conditions


LOCAL_PARTS = {"day": local_day, "weekday": local_weekday, "hour_of_day": local_hour}
"""Dimensions in clinic time (from the hour on the rollup, from ``created_at`` on raw rows)."""


_STATUS_GRAIN = frozenset({"hour", "channel", "status", *LOCAL_PARTS})
RollupTable = type[MessageRollup] | type[MessageStatusRollup]


def _rollup_table(by: Sequence[str], filters: Filters, where: Sequence[ColumnElement[bool]]) -> RollupTable:
    """The smaller status rollups when they hold every column the query groups or filters by."""
    if not where and filters.template_id is None and _STATUS_GRAIN.issuperset(by):
        return MessageStatusRollup
    return MessageRollup


def _keys(by: Sequence[str], period: Period, *, rollup: RollupTable | None) -> dict[str, ColumnElement[Any]]:
    at = rollup.hour if rollup is not None else Message.created_at
    keys: dict[str, ColumnElement[Any]] = {}
    for name in by:
        if name in LOCAL_PARTS:
            keys[name] = in_zone(LOCAL_PARTS[name], at, period.timezone, period.end)
        else:
            keys[name] = getattr(rollup, name) if rollup is not None else raw_dimension(name)
    return keys


def grouped(session: TenantSession, period: Period, by: Sequence[str], *, filters: Filters = NO_FILTERS,
            where: Sequence[ColumnElement[bool]] = (), raw_where: Sequence[ColumnElement[bool]] = (),
            now: dt.datetime | None = None, measures: Sequence[str] = MEASURES) -> list[dict[str, Any]]:
    """Sums of every rollup measure grouped ``by`` dimensions over ``period`` in the session's clinic.

    ``by`` names rollup columns, ``hour`` (UTC) or the clinic-time ``day``, ``weekday`` (1 = Monday)
    and ``hour_of_day``. ``where`` filters ``message_rollups`` rows and ``raw_where`` the same on messages.
    """
    split = hour_start(now or period.end)
    merged: dict[tuple, dict[str, Any]] = {}

    zeros = dict.fromkeys(MEASURES, 0)

    def add(result: Any) -> None:
        names = list(result.keys())  # the keys ``by`` first, then the sums
        width = len(by)
        for row in result:
            values = dict(zip(names, row, strict=True))
            key = tuple(row[:width])
            slot = merged.get(key)
            if slot is None:
                merged[key] = {**zeros, **values}
            else:
                for name in names[width:]:
                    slot[name] += values[name] or 0

    closed_end = min(split, period.end)
    if period.start < closed_end:
        table = _rollup_table(by, filters, where)
        keys = _keys(by, period, rollup=table)
        rollup_where = [table.tenant_id == session.tenant_id, table.hour >= period.start,
                        table.hour < closed_end, *_conditions(table, filters), *where]
        add(session.execute(
            select(*[expr.label(name) for name, expr in keys.items()],
                   *[func.sum(getattr(table, name)).label(name) for name in measures])
            .where(*rollup_where).group_by(*keys.values())))
    if period.end > split:
        live_start = max(split, period.start)
        add(session.execute(raw_aggregate(
            Message.tenant_id == session.tenant_id, Message.created_at >= live_start,
            Message.created_at < period.end, *_conditions(Message, filters), *raw_where,
            keys=_keys(by, period, rollup=None), measures=measures)))
    for slot in merged.values():
        slot["cost"] = Decimal(slot["cost"] or 0)
    return list(merged.values())
