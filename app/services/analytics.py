"""Dashboard and Analytics figures of one clinic, as tables ready to chart or download.

Every function takes a tenant-bound session and the signed-in ``Actor``, checks the role
(``VIEW_DASHBOARD`` for the Dashboard, ``VIEW_ANALYTICS`` for the Analytics page,
``EXPORT_DATA`` to download) and reads message statistics only through
``app.analytics.store.grouped`` (rollups, plus raw rows of the current hour). Definitions of
delivered, failed and success rate are ``db.enums.Outcome`` (statistics: ``app.analytics.stats``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from app.analytics import reminders
from app.analytics.rollups import LATENCY_COLUMNS, MEASURES
from app.analytics.stats import WEEKDAYS, Outcome, Totals, outcome
from app.analytics.store import NO_FILTERS, Filters, Period, grouped
from app.providers.error_codes import explain
from app.services import audit
from app.services.bulk import jobs as bulk_jobs
from app.services.permissions import Actor, Permission, authorize
from db.enums import BULK_JOB_MOVING, BulkJobStatus, Channel, MessageStatus, outcome_clause
from db.models import BulkJob, Message, MessageRollup, MessageTemplate, PreferenceChange, Tenant
from db.tenancy import TenantSession

RECENT_MESSAGES = 20
COUNTS = ("messages",)
OUTCOMES_AND_COST = ("messages", "cost", "read", *LATENCY_COLUMNS)  # tiles, channels, daily series


def _summed(rows: list[dict[str, Any]], by: tuple[str, ...], measures: tuple[str, ...]) -> list[dict[str, Any]]:
    """``rows`` added up per ``by``: fewer rows to work statistics out from."""
    sums: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in by)
        slot = sums.get(key)
        if slot is None:
            sums[key] = {**row}
        else:
            for name in measures:
                slot[name] += row[name]
    return list(sums.values())


def _by_key(rows: list[dict[str, Any]], key: str, measures: tuple[str, ...] = MEASURES) -> dict[Any, Totals]:
    totals: dict[Any, Totals] = {}
    for row in _summed(rows, (key, "channel", "status"), measures):
        totals.setdefault(row[key], Totals()).add(row["channel"], row["status"], row)
    return totals


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _day_outcomes(daily: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Messages per clinic day (and ``by``) split into outcome columns."""
    columns = ["Day", *[b.title() for b in by], *[o.label for o in Outcome]]
    if daily.empty:
        return pd.DataFrame(columns=columns)
    table = daily.groupby(["day", *by, "outcome"])["messages"].sum().unstack(fill_value=0)  # pivot_table: 5x slower
    table = table.reindex(columns=[o.value for o in Outcome], fill_value=0).reset_index()
    table.columns = columns
    return table


def _with_rate(frame: pd.DataFrame) -> pd.DataFrame:
    final = frame["Delivered"] + frame["Failed"]
    frame["Success rate (%)"] = (100 * frame["Delivered"] / final.where(final > 0)).round(1)
    return frame


# --- Dashboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    totals: Totals
    channels: pd.DataFrame  # Channel, Messages, Delivered, Failed, In progress, Success rate (%), Cost
    daily: pd.DataFrame  # Day, Delivered, Failed, In progress, Not sent


def _channel_table(rows_by_channel: dict[Any, Totals]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Channel": Channel(channel).label, "Messages": t.messages, "Delivered": t.delivered, "Failed": t.failed,
        "In progress": t.in_progress, "Success rate (%)": _pct(t.success_rate), "Cost": float(t.cost),
        "Median time to delivered (s)": t.median_seconds_to_delivered,
        "Cost per delivered": None if t.cost_per_delivered is None else float(t.cost_per_delivered),
    } for channel, t in sorted(rows_by_channel.items())],
        columns=["Channel", "Messages", "Delivered", "Failed", "In progress", "Success rate (%)", "Cost",
                 "Median time to delivered (s)", "Cost per delivered"])


def summary(session: TenantSession, actor: Actor, period: Period, filters: Filters = NO_FILTERS) -> Summary:
    """Tiles, channel breakdown and the daily trend by outcome (one query)."""
    authorize(session, actor, Permission.VIEW_DASHBOARD)
    rows = grouped(session, period, ("day", "channel", "status"), filters=filters, measures=OUTCOMES_AND_COST)
    by_status = _summed(rows, ("channel", "status"), OUTCOMES_AND_COST)  # the period's rows, added up once
    totals = Totals()
    for row in by_status:
        totals.add(row["channel"], row["status"], row)
    channels = _channel_table(_by_key(by_status, "channel", OUTCOMES_AND_COST))
    return Summary(totals, channels, _day_outcomes(_frame(rows), []))


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Grouped rows as a table, with each row's outcome and the channel's label."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["day", "channel", "status", "messages", "cost", "read", "outcome"])
    channels, statuses = frame["channel"].tolist(), frame["status"].tolist()  # not element by element
    pairs = {(c, s): outcome(c, s).value for c, s in set(zip(channels, statuses, strict=True))}
    labels = {c: Channel(c).label for c in set(channels)}
    frame["outcome"] = [pairs[(c, s)] for c, s in zip(channels, statuses, strict=True)]
    frame["channel"] = [labels[c] for c in channels]
    frame["cost"] = frame["cost"].astype(float)
    return frame


def _clinic_zone(session: TenantSession) -> ZoneInfo:
    """The clinic's time zone: every time these tables show is in it."""
    return ZoneInfo(session.scalar(select(Tenant.timezone).where(Tenant.id == session.tenant_id)) or "UTC")


def _local(at: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """``at`` as the clinic's wall-clock time (a table column names the zone)."""
    return None if at is None else at.astimezone(zone).replace(tzinfo=None)


def recent_messages(session: TenantSession, actor: Actor, *, limit: int = RECENT_MESSAGES) -> pd.DataFrame:
    """The newest messages (an index read of ``limit`` rows), each with its detail page's link; "Created"
    is in the clinic's time zone."""
    authorize(session, actor, Permission.VIEW_DASHBOARD)
    zone = _clinic_zone(session)
    rows = session.execute(
        select(Message.id, Message.created_at, Message.channel, Message.status, MessageTemplate.name,
               Message.status_reason)
        .outerjoin(MessageTemplate, MessageTemplate.id == Message.template_id)
        .where(Message.tenant_id == session.tenant_id)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    ).all()
    return pd.DataFrame([{
        "Created": _local(created, zone), "Channel": Channel(channel).label, "Template": name or "(custom text)",
        "Status": MessageStatus(status).value.replace("_", " ").capitalize(), "Reason": reason or "",
        "Details": f"messages?message={message_id}",
    } for message_id, created, channel, status, name, reason in rows],
        columns=["Created", "Channel", "Template", "Status", "Reason", "Details"])


def failure_reasons(session: TenantSession, actor: Actor, period: Period, filters: Filters = NO_FILTERS, *,
                    permission: Permission = Permission.VIEW_DASHBOARD) -> pd.DataFrame:
    """Failed messages per error code, most first, with the plain-language reason and what to do."""
    authorize(session, actor, permission)
    rows = grouped(session, period, ("error_code",), filters=filters, measures=COUNTS,
                   where=[outcome_clause(MessageRollup.channel, MessageRollup.status, Outcome.FAILED)],
                   raw_where=[outcome_clause(Message.channel, Message.status, Outcome.FAILED)])
    table = []
    for row in sorted(rows, key=lambda r: (-r["messages"], str(r["error_code"]))):
        info = explain(row["error_code"])
        table.append({"Code": row["error_code"] or "—", "Reason": info.title if info else "No error code reported.",
                      "Suggested action": info.action if info else "Open the message for details.",
                      "Messages": int(row["messages"])})
    frame = pd.DataFrame(table, columns=["Code", "Reason", "Suggested action", "Messages"])
    total = frame["Messages"].sum()
    frame["Cumulative share (%)"] = (100 * frame["Messages"].cumsum() / total).round(1) if total else []
    return frame


def _job_outcomes(session: TenantSession, jobs: list[BulkJob]) -> dict[uuid.UUID, Totals]:
    """Each job's recipients by the outcome of their last attempt: the counters the Bulk send page's
    progress reads (``app.services.bulk.jobs.status_counts``), so both screens show the same numbers
    and a retry is never a second recipient."""
    outcomes: dict[uuid.UUID, Totals] = {}
    for job in jobs:
        totals = outcomes[job.id] = Totals()
        for (channel, status), count in bulk_jobs.status_counts(session, job.id).items():
            totals.add(channel, status, {**_NO_MEASURES, "messages": count})
    return outcomes


_NO_MEASURES = dict.fromkeys(MEASURES, 0)


def _jobs_table(jobs: list[BulkJob], outcomes: dict[uuid.UUID, Totals], zone: ZoneInfo) -> pd.DataFrame:
    return pd.DataFrame([{
        "Job": job.name or "(unnamed)", "Channel": Channel(job.channel).label,
        "Status": BulkJobStatus(job.status).value.capitalize(), "Created": _local(job.created_at, zone),
        "Recipients": job.total_recipients, "Delivered": outcomes.get(job.id, Totals()).delivered,
        "Failed": outcomes.get(job.id, Totals()).failed, "In progress": outcomes.get(job.id, Totals()).in_progress,
        "Not sent": outcomes.get(job.id, Totals()).not_sent,
        "Success rate (%)": _pct(outcomes.get(job.id, Totals()).success_rate),
    } for job in jobs], columns=["Job", "Channel", "Status", "Created", "Recipients", "Delivered", "Failed",
                                 "In progress", "Not sent", "Success rate (%)"])


def bulk_jobs_in_progress(session: TenantSession, actor: Actor) -> pd.DataFrame:
    """The jobs still moving (scheduled, being prepared, sending or paused; never an ended one), newest
    first, with their recipients' outcomes; "Created" is in the clinic's time zone."""
    authorize(session, actor, Permission.VIEW_DASHBOARD)
    jobs = list(session.scalars(select(BulkJob).where(BulkJob.status.in_(BULK_JOB_MOVING))
                                .order_by(BulkJob.created_at.desc()).limit(20)))
    return _jobs_table(jobs, _job_outcomes(session, jobs), _clinic_zone(session))


# --- Analytics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    delivery_rate: pd.DataFrame  # Day, Channel, outcomes, Success rate (%)
    channels: pd.DataFrame
    templates: pd.DataFrame  # Template, Channel, Messages, Delivered, Failed, Success rate (%), Cost
    failures: pd.DataFrame
    cost_daily: pd.DataFrame  # Day, Channel, Cost
    whatsapp_reads: pd.DataFrame  # Day, Delivered, Read, Read rate (%)
    heatmap: pd.DataFrame  # Weekday, Hour, Messages, Success rate (%)
    optouts: pd.DataFrame  # Day, Channel, Opt-outs
    bulk_jobs: pd.DataFrame


def template_choices(session: TenantSession, actor: Actor) -> dict[uuid.UUID, str]:
    authorize(session, actor, Permission.VIEW_ANALYTICS)
    rows = session.execute(select(MessageTemplate.id, MessageTemplate.name).order_by(MessageTemplate.name)).all()
    return {template_id: name for template_id, name in rows}


def _templates_table(session: TenantSession, period: Period, filters: Filters) -> pd.DataFrame:
    rows = grouped(session, period, ("template_id", "channel", "status"), filters=filters,
                   measures=("messages", "cost"))
    names = dict(session.execute(select(MessageTemplate.id, MessageTemplate.name)).all())
    table = [{
        "Template": names.get(template_id, "(custom text)") if template_id else "(custom text)",
        "Messages": t.messages, "Delivered": t.delivered, "Failed": t.failed,
        "Success rate (%)": _pct(t.success_rate), "Cost": float(t.cost),
    } for template_id, t in _by_key(rows, "template_id").items()]
    frame = pd.DataFrame(table, columns=["Template", "Messages", "Delivered", "Failed", "Success rate (%)", "Cost"])
    return frame.sort_values(["Messages", "Template"], ascending=[False, True], ignore_index=True)


def _heatmap(session: TenantSession, period: Period, filters: Filters) -> pd.DataFrame:
    columns = ["Weekday", "Hour", "Messages", "Success rate (%)"]
    frame = _frame(grouped(session, period, ("weekday", "hour_of_day", "channel", "status"), filters=filters,
                           measures=COUNTS))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(delivered=frame["messages"].where(frame["outcome"] == Outcome.DELIVERED.value, 0),
                         failed=frame["messages"].where(frame["outcome"] == Outcome.FAILED.value, 0))
    table = frame.groupby(["weekday", "hour_of_day"], as_index=False)[["messages", "delivered", "failed"]].sum()
    final = table["delivered"] + table["failed"]
    table["Success rate (%)"] = (100 * table["delivered"] / final.where(final > 0)).round(1)
    table["Weekday"] = [WEEKDAYS[int(d) - 1] for d in table["weekday"]]
    return table.rename(columns={"messages": "Messages", "hour_of_day": "Hour"})[columns]


def _whatsapp_reads(daily: pd.DataFrame) -> pd.DataFrame:
    columns = ["Day", "Delivered", "Read", "Read rate (%)"]
    frame = daily[(daily["channel"] == Channel.WHATSAPP.label) & (daily["outcome"] == Outcome.DELIVERED.value)] \
        if not daily.empty else daily
    if frame.empty:
        return pd.DataFrame(columns=columns)
    table = frame.groupby("day", as_index=False)[["messages", "read"]].sum()
    table["Read rate (%)"] = (100 * table["read"] / table["messages"].where(table["messages"] > 0)).round(1)
    return table.rename(columns={"day": "Day", "messages": "Delivered", "read": "Read"})[columns]


def _optouts(session: TenantSession, period: Period, filters: Filters) -> pd.DataFrame:
    fields = [f"{c.value}_opt_in" for c in Channel if filters.channel in (None, c)]
    rows = session.execute(
        select(PreferenceChange.created_at, PreferenceChange.field)
        .where(PreferenceChange.tenant_id == session.tenant_id, PreferenceChange.field.in_(fields),
               PreferenceChange.new_value == "false", PreferenceChange.created_at >= period.start,
               PreferenceChange.created_at < period.end)
    ).all()
    columns = ["Day", "Channel", "Opt-outs"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows, columns=["at", "field"])
    frame["Day"] = pd.to_datetime(frame["at"], utc=True).dt.tz_convert(period.timezone).dt.date
    frame["Channel"] = [Channel(f.removesuffix("_opt_in")).label for f in frame["field"]]
    return frame.groupby(["Day", "Channel"], as_index=False).size().rename(columns={"size": "Opt-outs"})[columns]


def report(session: TenantSession, actor: Actor, period: Period, filters: Filters = NO_FILTERS, *,
           now: dt.datetime) -> Report:
    """Everything the Analytics page shows, for ``period`` and ``filters``."""
    authorize(session, actor, Permission.VIEW_ANALYTICS)
    rows = grouped(session, period, ("day", "channel", "status"), filters=filters, now=now,
                   measures=OUTCOMES_AND_COST)
    daily = _frame(rows)
    delivery = _with_rate(_day_outcomes(daily, ["channel"]))
    cost = (daily.groupby(["day", "channel"], as_index=False)["cost"].sum()
            .rename(columns={"day": "Day", "channel": "Channel", "cost": "Cost"})) if not daily.empty else \
        pd.DataFrame(columns=["Day", "Channel", "Cost"])
    jobs = list(session.scalars(
        select(BulkJob).where(BulkJob.created_at >= period.start, BulkJob.created_at < period.end,
                              *([BulkJob.channel == filters.channel] if filters.channel else []))
        .order_by(BulkJob.created_at.desc()).limit(30)))
    return Report(
        delivery_rate=delivery, channels=_channel_table(_by_key(rows, "channel", OUTCOMES_AND_COST)),
        templates=_templates_table(session, period, filters),
        failures=failure_reasons(session, actor, period, filters, permission=Permission.VIEW_ANALYTICS),
        cost_daily=cost, whatsapp_reads=_whatsapp_reads(daily), heatmap=_heatmap(session, period, filters),
        optouts=_optouts(session, period, filters),
        bulk_jobs=_jobs_table(jobs, _job_outcomes(session, jobs), period.zone),
    )


def reminder_results(session: TenantSession, actor: Actor, period: Period) -> reminders.ReminderResults:
    """The Analytics page's reminders and replies for ``period``: confirmation rate, cancellations by
    reply, no-shows of reminded and not-reminded appointments, the front desk's reply time and the
    replies by intent (definitions: ``app.analytics.reminders``)."""
    authorize(session, actor, Permission.VIEW_ANALYTICS)
    return reminders.results(session, period)


def record_export(session: TenantSession, actor: Actor, name: str, *, rows: int, period: Period) -> None:
    """Audit a chart's data download (who, which chart, how many rows, which period)."""
    authorize(session, actor, Permission.EXPORT_DATA)
    audit.record(session, actor, "analytics.export", object_type="chart", object_id=name[:64],
                 details={"rows": rows, "start": period.start.isoformat(), "end": period.end.isoformat()})
