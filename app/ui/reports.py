"""Widgets shared by the Dashboard and Analytics pages: the period picker and a chart with its CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.analytics.chart_csv import to_csv
from app.analytics.store import NO_FILTERS, Filters, Period
from app.errors import ValidationError
from app.services import analytics
from app.services.permissions import Actor, Permission
from app.ui import cached, feedback
from app.ui.text import as_text
from db.tenancy import TenantSession
from db.types import utcnow

PRESETS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90}
CUSTOM = "Custom"
CACHE_SECONDS = 5  # a rerun (a click) within this reuses the figures; the live panels refresh less often


def period_picker(actor: Actor, key: str) -> Period | None:
    """Time range 7 / 30 / 90 days or custom dates (clinic time); None when the custom dates are refused."""
    timezone = cached.clinic(actor).timezone
    now = utcnow()
    choice = st.segmented_control("Time range", [*PRESETS, CUSTOM], default="Last 7 days", key=f"{key}_range")
    if choice == CUSTOM:
        today = now.astimezone(Period(now, now, timezone).zone).date()
        picked = st.date_input("Dates (clinic time)", value=(today - dt.timedelta(days=13), today),
                               max_value=today, key=f"{key}_dates")
        if not isinstance(picked, tuple) or len(picked) != 2:
            st.info("Pick the first and the last day.")
            return None
        try:
            return Period.between_dates(picked[0], picked[1], now=now, timezone=timezone)
        except ValidationError as err:
            st.error(as_text(err), icon=":material/error:")
            return None
    return Period.last_days(PRESETS.get(choice or "", 7), now=now, timezone=timezone)


def _audit_download(name: str, rows: int, period: Period) -> None:
    feedback.service(analytics.record_export, name, rows=rows, period=period)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def _figure(name: str, data: pd.DataFrame, _build: Callable[[pd.DataFrame], go.Figure]) -> go.Figure:
    return _build(data)  # keyed by the chart's name and its data: a rerun with the same data redraws nothing


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def _csv(name: str, data: pd.DataFrame) -> bytes:
    return to_csv(data)


def chart(actor: Actor, build: Callable[[pd.DataFrame], go.Figure], data: pd.DataFrame, name: str,
          period: Period) -> None:
    """``build(data)`` as a chart and, for roles that may export, its data as CSV (the download is audited)."""
    if data.empty:
        st.caption(f"{name.replace('_', ' ').capitalize()}: no messages in this period.")
        return
    st.plotly_chart(_figure(name, data, build), key=f"chart_{name}")
    if actor.can(Permission.EXPORT_DATA):
        st.download_button("Download CSV", _csv(name, data), file_name=f"{name}.csv", mime="text/csv",
                           key=f"csv_{name}", icon=":material/download:", on_click=_audit_download,
                           args=(name, len(data), period))


def _key(period: Period, filters: Filters = NO_FILTERS) -> tuple:
    # ``end`` is "now" for the presets: bucketed, so reruns within CACHE_SECONDS share one result
    return (period.start.isoformat(), int(period.end.timestamp() // CACHE_SECONDS), period.timezone,
            filters.channel, str(filters.template_id))


@cached.clinic_cached(ttl=CACHE_SECONDS, key=_key)
def _report(db: TenantSession, actor: Actor, period: Period, filters: Filters) -> analytics.Report:
    return analytics.report(db, actor, period, filters, now=utcnow())


def report(actor: Actor, period: Period, filters: Filters) -> analytics.Report | None:
    """The Analytics report, at most ``CACHE_SECONDS`` old (keyed by clinic, role, period and filters)."""
    return feedback.attempt(lambda: _report(actor, period, filters))


_summary = cached.clinic_cached(ttl=CACHE_SECONDS, key=_key)(analytics.summary)


def summary(actor: Actor, period: Period) -> analytics.Summary | None:
    """The Dashboard's tiles and charts, at most ``CACHE_SECONDS`` old."""
    return feedback.attempt(lambda: _summary(actor, period))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"

