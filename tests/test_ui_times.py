"""Times on screen (app/ui/times.py): the clinic's zone, always named; a missing time is a dash."""

from __future__ import annotations

import datetime as dt

from app.ui import times

LATE_EVENING_UTC = dt.datetime(2026, 12, 5, 22, 30, 15, tzinfo=dt.UTC)  # already the 6th in Riyadh


def test_a_time_is_shown_in_the_clinics_zone_and_says_which() -> None:
    assert times.clinic_time(LATE_EVENING_UTC, "Asia/Riyadh") == "6 Dec 2026, 01:30 (Asia/Riyadh)"
    assert times.clinic_time(LATE_EVENING_UTC, "Asia/Riyadh", seconds=True) == "6 Dec 2026, 01:30:15 (Asia/Riyadh)"
    assert times.clinic_time(LATE_EVENING_UTC, "Europe/London", date_only=True, label=False) == "5 Dec 2026"


def test_a_table_column_holds_clinic_wall_clock_time_under_a_heading_naming_the_zone() -> None:
    assert times.local(LATE_EVENING_UTC, "Asia/Riyadh") == dt.datetime(2026, 12, 6, 1, 30, 15)
    assert times.local(LATE_EVENING_UTC.replace(tzinfo=None), "Asia/Riyadh") == dt.datetime(2026, 12, 6, 1, 30, 15)
    assert times.heading("Created", "Asia/Riyadh") == "Created (Asia/Riyadh)"


def test_no_time_is_a_dash_never_none() -> None:
    assert times.clinic_time(None, "Asia/Riyadh") == "—"
    assert times.local(None, "Asia/Riyadh") is None  # an empty cell in a table
