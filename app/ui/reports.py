"""Widgets shared by the Dashboard and Analytics pages: the period picker and a chart with its CSV; and
how the app's tables show their columns: one format for a count (``count_columns``: 5,251, not 5251)
and the columns of the wide tables, set so that what matters is in view at 1,400 px."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.analytics import reminders
from app.analytics.chart_csv import to_csv
from app.analytics.store import NO_FILTERS, Filters, Period
from app.errors import ValidationError
from app.services import analytics
from app.services.permissions import Actor, Permission
from app.ui import cached, feedback, times
from app.ui.text import as_text
from db.tenancy import TenantSession
from db.types import utcnow

PRESETS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90}
CUSTOM = "Custom"
CACHE_SECONDS = 5  # a rerun (a click) within this reuses the figures; the live panels refresh less often
REPORT_SECONDS = 60  # the Analytics report is not live: going back to it within a minute redraws, not recounts


@dataclass(frozen=True)
class PeriodChoice:
    """What the time-range picker holds: the last ``days`` days, or the clinic dates ``first`` to ``last``.

    ``at(now)`` is the period as of ``now``: a live panel asks again on each refresh, so "the last 7
    days" slides forward and new messages appear.
    """

    timezone: str
    days: int | None = None
    first: dt.date | None = None
    last: dt.date | None = None

    def at(self, now: dt.datetime) -> Period:
        if self.first is not None and self.last is not None:
            return Period.between_dates(self.first, self.last, now=now, timezone=self.timezone)
        return Period.last_days(self.days or PRESETS["Last 7 days"], now=now, timezone=self.timezone)


def period_choice(actor: Actor, key: str) -> PeriodChoice | None:
    """Time range 7 / 30 / 90 days or custom dates (clinic time); None when the custom dates are refused."""
    timezone = cached.clinic(actor).timezone
    now = utcnow()
    choice = st.segmented_control("Time range", [*PRESETS, CUSTOM], default="Last 7 days", key=f"{key}_range")
    if choice != CUSTOM:
        return PeriodChoice(timezone, days=PRESETS.get(choice or "", 7))
    today = now.astimezone(Period(now, now, timezone).zone).date()
    picked = st.date_input("Dates (clinic time)", value=(today - dt.timedelta(days=13), today),
                           max_value=today, key=f"{key}_dates")
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick the first and the last day.")
        return None
    chosen = PeriodChoice(timezone, first=picked[0], last=picked[1])
    try:
        chosen.at(now)
    except ValidationError as err:
        st.error(as_text(err), icon=":material/error:")
        return None
    return chosen


def period_picker(actor: Actor, key: str) -> Period | None:
    """``period_choice`` as of now (for a page that is not live)."""
    chosen = period_choice(actor, key)
    return None if chosen is None else chosen.at(utcnow())


def clock(timezone: str, now: dt.datetime | None = None) -> str:
    """The time of day in the clinic, labelled with its zone: "14:05:09 (Asia/Riyadh)"."""
    return f"{(now or utcnow()).astimezone(ZoneInfo(timezone)):%H:%M:%S} ({timezone})"


def _audit_download(name: str, rows: int, period: Period) -> None:
    feedback.service(analytics.record_export, name, rows=rows, period=period)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def _figure(name: str, data: pd.DataFrame, _build: Callable[[pd.DataFrame], go.Figure]) -> go.Figure:
    return _build(data)  # keyed by the chart's name and its data: a rerun with the same data redraws nothing


def chart(actor: Actor, build: Callable[[pd.DataFrame], go.Figure], data: pd.DataFrame, name: str,
          period: Period, *, empty: str | None = None) -> None:
    """``build(data)`` as a chart and, for roles that may export, its data as CSV (the download is audited).
    With no data, ``empty`` says so (and what to do), or "<name>: no messages in this period."."""
    if data.empty:
        st.caption(empty or f"{name.replace('_', ' ').capitalize()}: no messages in this period.")
        return
    st.plotly_chart(_figure(name, data, build), key=f"chart_{name}", config={"displayModeBar": False})
    if actor.can(Permission.EXPORT_DATA):
        # the CSV is written when the button is clicked, not on every rerun of the page
        st.download_button("Download CSV", lambda: to_csv(data), file_name=f"{name}.csv", mime="text/csv",
                           key=f"csv_{name}", icon=":material/download:", on_click=_audit_download,
                           args=(name, len(data), period))


def _key(period: Period, filters: Filters = NO_FILTERS, *, seconds: float = CACHE_SECONDS) -> tuple:
    # ``end`` is "now" for the presets: bucketed, so reruns within ``seconds`` share one result
    return (period.start.isoformat(), int(period.end.timestamp() // seconds), period.timezone,
            filters.channel, str(filters.template_id))


def _report_key(period: Period, filters: Filters = NO_FILTERS) -> tuple:
    return _key(period, filters, seconds=REPORT_SECONDS)


@cached.clinic_cached(ttl=REPORT_SECONDS, key=_report_key)
def _report(db: TenantSession, actor: Actor, period: Period, filters: Filters) -> analytics.Report:
    return analytics.report(db, actor, period, filters, now=utcnow())


def report(actor: Actor, period: Period, filters: Filters) -> analytics.Report | None:
    """The Analytics report, at most ``REPORT_SECONDS`` old (keyed by clinic, role, period and filters)."""
    return feedback.attempt(lambda: _report(actor, period, filters))


_reminder_results = cached.clinic_cached(ttl=REPORT_SECONDS, key=_report_key)(analytics.reminder_results)


def reminder_results(actor: Actor, period: Period) -> reminders.ReminderResults | None:
    """Reminders and replies on Analytics, at most ``REPORT_SECONDS`` old (keyed by clinic, role and period)."""
    return feedback.attempt(lambda: _reminder_results(actor, period))


_summary = cached.clinic_cached(ttl=CACHE_SECONDS, key=_key)(analytics.summary)


def summary(actor: Actor, period: Period) -> analytics.Summary | None:
    """The Dashboard's tiles and charts, at most ``CACHE_SECONDS`` old."""
    return feedback.attempt(lambda: _summary(actor, period))


_recent = cached.clinic_cached(ttl=CACHE_SECONDS)(analytics.recent_messages)
_failures = cached.clinic_cached(ttl=CACHE_SECONDS, key=_key)(analytics.failure_reasons)
_moving_jobs = cached.clinic_cached(ttl=CACHE_SECONDS)(analytics.bulk_jobs_in_progress)


def recent_messages(actor: Actor) -> pd.DataFrame | None:
    """The Dashboard's newest messages, at most ``CACHE_SECONDS`` old; the "Open" link and the status
    first, where a long template name or reason cannot push them out of the Dashboard's left column."""
    table = feedback.attempt(lambda: _recent(actor))
    first = ["Details", "Created", "Channel", "Status"]
    return None if table is None else table[[*first, *(c for c in table.columns if c not in first)]]


def created_column(zone: str) -> st.column_config.DatetimeColumn:
    """A Dashboard table's "Created" column: the clinic's time in the app's one display format, the zone named."""
    return st.column_config.DatetimeColumn(times.heading("Created", zone), format=times.DISPLAY_FORMAT)


def recent_messages_columns(zone: str) -> dict[str, st.column_config.Column]:
    """How the Dashboard's recent messages are shown: the "Open" link narrow (and first), times in the
    app's one format."""
    return {
        "Created": created_column(zone),
        "Channel": st.column_config.TextColumn(width="small"),
        "Details": st.column_config.LinkColumn("Details", display_text="Open", width="small"),
    }


def failure_reasons(actor: Actor, period: Period) -> pd.DataFrame | None:
    """The Dashboard's failures by reason, at most ``CACHE_SECONDS`` old."""
    return feedback.attempt(lambda: _failures(actor, period))


def bulk_jobs_in_progress(actor: Actor) -> pd.DataFrame | None:
    """The bulk jobs still moving, at most ``CACHE_SECONDS`` old."""
    return feedback.attempt(lambda: _moving_jobs(actor))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def amount(value: float | None, unit: str) -> str:
    """``25.5 min``; a dash when there is nothing to measure."""
    return "—" if value is None else f"{value:g} {unit}"



# -- tables ----------------------------------------------------------------------------------------

COUNT_FORMAT = "%,d"  # 5,251: a count in a table reads as text writes it (f"{n:,}", app.ui.text.counted)


def count_column(label: str | None = None, *, help: str | None = None) -> st.column_config.NumberColumn:
    """A table column of counts: thousands separated (5,251)."""
    return st.column_config.NumberColumn(label, format=COUNT_FORMAT, help=help)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def count_columns(table: pd.DataFrame | Iterable[Mapping[str, object]]) -> dict[str, st.column_config.Column]:
    """A ``count_column`` for each column of whole numbers in ``table`` (a frame, or rows as dicts):
    the one number format of the app's tables. Merge the table's own columns over it."""
    if isinstance(table, pd.DataFrame):
        return {name: count_column() for name, kind in table.dtypes.items()
                if pd.api.types.is_integer_dtype(kind) and not pd.api.types.is_bool_dtype(kind)}
    rows = list(table)
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: count_column() for name in names
            if any(_whole(row.get(name)) for row in rows)
            and all(_whole(row.get(name)) or row.get(name) is None for row in rows)}


def template_list_columns(last_used: str) -> dict[str, st.column_config.Column]:
    """The Templates list: code and name kept to a width (the picker below names them in full), so
    "Last used" is in view at 1,400 px; the version, least asked for, comes last."""
    return {
        "Code": st.column_config.TextColumn(width=180),
        "Name": st.column_config.TextColumn(width=180),
        "Sent": count_column(help="Messages sent with it (test sends left out)."),
        "Delivery rate": st.column_config.NumberColumn(format="percent", help="Delivered out of delivered or failed."),
        last_used: times.column(help="Never used when empty."),
        "Version": count_column(),
    }


def audit_columns(when: str) -> dict[str, st.column_config.Column]:
    """The Audit log: the details wide enough to read at 1,400 px; the raw id last and narrow (the
    object is named in words before it)."""
    return {
        when: times.column(seconds=True),
        "Who": st.column_config.TextColumn(width=110),
        "Action": st.column_config.TextColumn(width=120),
        "Object": st.column_config.TextColumn(width=190),
        "Details": st.column_config.TextColumn(width=330),
        "Id": st.column_config.TextColumn(width="small"),
    }


def preference_history_columns(when: str) -> dict[str, st.column_config.Column]:
    """A patient's opt-out and preference history (the page's full width): who and why in view, the
    free-text reason last, where it has the rest of the row."""
    return {
        when: times.column(),
        "What": st.column_config.TextColumn(width=140),
        "By": st.column_config.TextColumn(width=120),
        "Reason": st.column_config.TextColumn(width="large"),
    }
