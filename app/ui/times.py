"""Times on screen: always in the clinic's time zone, and always saying which zone that is.

The one rule for showing a stored (UTC) time: ``clinic_time`` converts it to the clinic's zone and
writes it with the zone's name (``6 Dec 2026, 10:15 (Asia/Riyadh)``); a table column holds the
clinic's wall-clock time (``local``, sortable) under a heading that names the zone (``heading``),
shown with ``column`` (one display format). A missing time is a dash, never ``None``.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st

DASH = "—"
DISPLAY_FORMAT = "D MMM YYYY, HH:mm"  # what ``column`` shows (moment.js tokens)
DISPLAY_FORMAT_SECONDS = "D MMM YYYY, HH:mm:ss"


def _zone(timezone: str | ZoneInfo) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)


def zone_name(timezone: str | ZoneInfo) -> str:
    """The zone as staff read it: ``Asia/Riyadh``."""
    return _zone(timezone).key


def local(value: dt.datetime | None, timezone: str | ZoneInfo) -> dt.datetime | None:
    """``value`` as the clinic's wall-clock time (no zone attached), for a table column under ``heading``."""
    if value is None:
        return None
    if value.tzinfo is None:  # stored times are UTC; SQLite may hand them back without a zone
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(_zone(timezone)).replace(tzinfo=None)


def heading(name: str, timezone: str | ZoneInfo) -> str:
    """A column heading that says the zone: ``Created (Asia/Riyadh)``."""
    return f"{name} ({zone_name(timezone)})"


def clinic_time(value: dt.datetime | None, timezone: str | ZoneInfo, *, seconds: bool = False,
                date_only: bool = False, label: bool = True) -> str:
    """``6 Dec 2026, 10:15 (Asia/Riyadh)``; a dash when there is no time."""
    shown = local(value, timezone)
    if shown is None:
        return DASH
    text = f"{shown.day} {shown:%b %Y}" if date_only else (
        f"{shown.day} {shown:%b %Y, %H:%M:%S}" if seconds else f"{shown.day} {shown:%b %Y, %H:%M}")
    return f"{text} ({zone_name(timezone)})" if label else text


def column(*, seconds: bool = False, help: str | None = None) -> st.column_config.DatetimeColumn:
    """The column configuration for a ``local`` time under a ``heading``."""
    return st.column_config.DatetimeColumn(format=DISPLAY_FORMAT_SECONDS if seconds else DISPLAY_FORMAT, help=help)
