"""The clinic calendar (pure): weekends, sending and Ramadan hours, public holidays from the ``holidays``
library (Saudi Eid dates by Umm al-Qura), the clinic's closed days, and where a reminder moves."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from hijridate import Hijri

from app.services.reminders.calendar import ClinicHours, holiday_table, is_ramadan
from db.enums import ReminderShift

RIYADH = ZoneInfo("Asia/Riyadh")
EARLIER, LATER = ReminderShift.EARLIER, ReminderShift.LATER
SAUDI = ClinicHours()  # the defaults: Friday-Saturday weekend, 09:00-21:00, Ramadan 10:00-23:00, holidays on


def at(year: int, month: int, day: int, hour: int, minute: int = 0, zone: ZoneInfo = RIYADH) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(dt.UTC)


def test_a_reminder_due_on_friday_moves_to_thursday_evening_or_sunday_morning() -> None:
    friday = at(2026, 12, 11, 10)
    assert SAUDI.why_not(friday) == "Friday (weekend)"
    assert SAUDI.place(friday, EARLIER) == SAUDI.place(friday, EARLIER, not_before=at(2026, 12, 7, 8))
    earlier, later = SAUDI.place(friday, EARLIER), SAUDI.place(friday, LATER)
    assert (earlier.at_utc, earlier.moved_reason) == (at(2026, 12, 10, 20, 59), "Friday (weekend)")
    assert (later.at_utc, later.moved_reason) == (at(2026, 12, 13, 9), "Friday (weekend)")


def test_a_sending_time_stays_where_it_is() -> None:
    tuesday = at(2026, 12, 8, 15, 30)
    assert SAUDI.place(tuesday, EARLIER).at_utc == tuesday
    assert SAUDI.place(tuesday, EARLIER).moved_reason == ""


def test_the_21_00_boundary() -> None:
    assert SAUDI.is_sending_time(at(2026, 12, 8, 9, 0))
    assert SAUDI.is_sending_time(at(2026, 12, 8, 20, 59))
    assert SAUDI.why_not(at(2026, 12, 8, 21, 0)) == "outside sending hours 09:00–21:00"
    assert SAUDI.why_not(at(2026, 12, 8, 8, 59)) == "outside sending hours 09:00–21:00"
    assert SAUDI.place(at(2026, 12, 8, 21, 0), EARLIER).at_utc == at(2026, 12, 8, 20, 59)
    assert SAUDI.place(at(2026, 12, 8, 21, 0), LATER).at_utc == at(2026, 12, 9, 9, 0)
    assert SAUDI.place(at(2026, 12, 9, 7, 0), EARLIER).at_utc == at(2026, 12, 8, 20, 59)


@pytest.mark.parametrize("hijri_year", [1447, 1448])  # 2026 and 2027
def test_eid_al_fitr_and_eid_al_adha_come_from_the_library_on_umm_al_qura_dates(hijri_year: int) -> None:
    eid_al_fitr = Hijri(hijri_year, 10, 1).to_gregorian()  # 1 Shawwal
    eid_al_adha = Hijri(hijri_year, 12, 10).to_gregorian()  # 10 Dhu al-Hijjah
    fitr = dt.date(eid_al_fitr.year, eid_al_fitr.month, eid_al_fitr.day)
    adha = dt.date(eid_al_adha.year, eid_al_adha.month, eid_al_adha.day)
    table = holiday_table("SA", fitr.year)
    assert table[fitr] == "Eid al-Fitr Holiday" and table[adha] == "Eid al-Adha Holiday"
    assert table[adha - dt.timedelta(days=1)] == "Day of Arafah"
    open_eid_days = [d for d in (fitr + dt.timedelta(days=n) for n in range(-2, 6))
                     if d.weekday() not in (4, 5) and "Eid al-Fitr" in table.get(d, "")]
    assert open_eid_days, "a working day of the Eid al-Fitr holiday"
    for day in open_eid_days:
        assert SAUDI.day(day).closed.startswith("Eid al-Fitr Holiday")


def test_the_known_2026_and_2027_eid_days() -> None:
    assert SAUDI.why_not(at(2026, 3, 22, 12)) == "Eid al-Fitr Holiday"  # a Sunday
    assert SAUDI.why_not(at(2026, 3, 23, 12)) == "Eid al-Fitr Holiday (observed)"  # for the Friday
    assert SAUDI.why_not(at(2026, 5, 27, 12)) == "Eid al-Adha Holiday"  # a Wednesday
    assert SAUDI.why_not(at(2027, 3, 10, 12)) == "Eid al-Fitr Holiday"
    assert SAUDI.why_not(at(2027, 5, 16, 12)) == "Eid al-Adha Holiday"  # a Sunday
    assert SAUDI.why_not(at(2026, 9, 23, 12)) == "National Day Holiday"


def test_a_reminder_due_in_eid_moves_before_or_after_the_whole_holiday() -> None:
    eid_sunday = at(2026, 3, 22, 10)  # the Eid al-Fitr holiday runs Thursday 19 to Tuesday 24 March 2026
    earlier, later = SAUDI.place(eid_sunday, EARLIER), SAUDI.place(eid_sunday, LATER)
    assert earlier.at_utc == at(2026, 3, 18, 22, 59)  # Wednesday, 29 Ramadan: Ramadan hours
    assert later.at_utc == at(2026, 3, 25, 9, 0)  # Wednesday after Eid: the usual hours
    assert earlier.moved_reason == later.moved_reason == "Eid al-Fitr Holiday"


def test_ramadan_hours() -> None:
    assert is_ramadan(dt.date(2026, 3, 1)) and not is_ramadan(dt.date(2026, 3, 25))
    assert SAUDI.why_not(at(2026, 3, 1, 9, 30)) == "Ramadan hours 10:00–23:00"
    assert SAUDI.is_sending_time(at(2026, 3, 1, 22, 30))
    assert SAUDI.place(at(2026, 3, 1, 9, 30), EARLIER).at_utc == at(2026, 2, 26, 22, 59)  # Thursday of Ramadan
    assert SAUDI.place(at(2026, 3, 1, 9, 30), LATER).at_utc == at(2026, 3, 1, 10, 0)
    clinic = ClinicHours(ramadan_start=dt.time(20, 0), ramadan_end=dt.time(23, 30))
    assert clinic.why_not(at(2026, 3, 2, 12)) == "Ramadan hours 20:00–23:30"


def test_a_zone_with_daylight_saving_time() -> None:
    london = ZoneInfo("Europe/London")
    clinic = ClinicHours(timezone="Europe/London", region="GB", weekend_days=frozenset({5, 6}))
    # Monday 30 March 2026 07:00 BST (UTC+1): earlier is Friday 27 March 20:59 GMT (UTC+0)
    monday = at(2026, 3, 30, 7, 0, london)
    assert clinic.place(monday, EARLIER).at_utc == dt.datetime(2026, 3, 27, 20, 59, tzinfo=dt.UTC)
    # Sunday 29 March (the clocks go forward) is a weekend day: later is Monday 09:00 BST, 08:00 UTC
    sunday = at(2026, 3, 29, 12, 0, london)
    assert clinic.place(sunday, LATER).at_utc == dt.datetime(2026, 3, 30, 8, 0, tzinfo=dt.UTC)
    assert clinic.why_not(at(2026, 4, 3, 12, 0, london)) == "Good Friday"
    assert clinic.is_sending_time(at(2026, 3, 20, 12, 0, london))  # a Friday is a working day in London


def test_a_closed_date_moves_a_reminder_past_it() -> None:
    clinic = ClinicHours(closed_dates=frozenset({dt.date(2026, 12, 10)}))  # the Thursday before the weekend
    assert clinic.why_not(at(2026, 12, 10, 12)) == "closed day (set by the clinic)"
    assert clinic.place(at(2026, 12, 11, 10), EARLIER).at_utc == at(2026, 12, 9, 20, 59)  # Wednesday


def test_public_holidays_can_be_ignored_and_an_unknown_region_has_none() -> None:
    assert ClinicHours(public_holidays=False).is_sending_time(at(2026, 3, 22, 12))
    assert ClinicHours(region="ZZ").is_sending_time(at(2026, 3, 22, 12))
    assert holiday_table("ZZ", 2026) == {}


def test_a_long_closure_answers_at_once_within_its_bounds() -> None:
    closed = frozenset(dt.date(2026, 12, 1) + dt.timedelta(days=n) for n in range(100))
    clinic = ClinicHours(closed_dates=closed)
    started = time.perf_counter()
    earlier = clinic.place(at(2027, 1, 20, 10), EARLIER, not_before=at(2026, 12, 7, 8))
    later = clinic.place(at(2026, 12, 2, 10), LATER, not_after=at(2026, 12, 20, 10))
    assert time.perf_counter() - started < 0.5
    assert (earlier.at_utc, earlier.refused) == (None, "its time had passed (closed day (set by the clinic))")
    assert (later.at_utc, later.refused) == (
        None, "no sending time before the appointment (closed day (set by the clinic))")
    half_a_year = ClinicHours(closed_dates=frozenset(dt.date(2026, 12, 1) + dt.timedelta(days=n) for n in range(200)))
    unbounded = half_a_year.place(at(2027, 3, 22, 10), EARLIER)  # no "now" given: the search still stops
    assert (unbounded.at_utc, unbounded.refused) == (None, "no sending time before it (closed day (set by the clinic))")
    ten_days = ClinicHours(closed_dates=frozenset(dt.date(2026, 12, 1) + dt.timedelta(days=n) for n in range(10)))
    assert ten_days.place(at(2026, 12, 5, 10), LATER).at_utc == at(2026, 12, 13, 9)  # Sunday after the weekend


def test_never_before_now_nor_at_or_after_the_appointment() -> None:
    friday = at(2026, 12, 11, 10)
    passed = SAUDI.place(friday, EARLIER, not_before=at(2026, 12, 11, 8))  # booked on Friday morning
    assert (passed.at_utc, passed.refused) == (None, "its time had passed (Friday (weekend))")
    too_late = SAUDI.place(friday, LATER, not_after=at(2026, 12, 12, 18))  # the appointment is on Saturday
    assert (too_late.at_utc, too_late.refused[:38]) == (None, "no sending time before the appointment")


def test_the_holiday_table_is_cached_per_region_and_year() -> None:
    holiday_table.cache_clear()
    for _ in range(3):
        holiday_table("SA", 2026)
    assert holiday_table.cache_info().hits == 2
