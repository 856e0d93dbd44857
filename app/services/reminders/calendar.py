"""When a clinic's reminders may go out, and where a reminder goes when its time is not one of them.

Pure (no database): ``ClinicHours`` is built from the clinic's ``ClinicCalendar`` row, or the
defaults for a Saudi clinic when it has none (Friday-Saturday weekend, 09:00-21:00, Ramadan
10:00-23:00, public holidays on), with the clinic's time zone and region.

A day is closed on a weekend day, on one of the clinic's own closed dates and, when public holidays
are on, on a public holiday of the clinic's region. An open day sends from its start (inclusive)
to its end (exclusive, as patients' quiet hours do): 09:00-21:00 means 09:00 to 20:59; in Ramadan
its Ramadan hours apply instead.

Public holidays come from the ``holidays`` library (``holidays.country_holidays``). Its Saudi
holidays (Eid al-Fitr, Day of Arafah and Eid al-Adha, with the compensation days the government
gives when one falls on the weekend, Founding Day, National Day) are dated by the Umm al-Qura
calendar: the library confirms Saudi Eid dates against official announcements up to its last
confirmed year (2025 in 0.109) and takes later years from its Umm al-Qura table, so a date may
still move by a day when the moon is sighted; a clinic adds such a day as a closed date.
Ramadan is Hijri month 9 by the Umm al-Qura calendar of ``hijridate``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from hijridate import Gregorian

from db.enums import ReminderShift

DEFAULT_WEEKEND = frozenset({4, 5})  # Python weekdays: Friday, Saturday (Saudi Arabia since 2013)
DEFAULT_SEND = (dt.time(9, 0), dt.time(21, 0))
DEFAULT_RAMADAN = (dt.time(10, 0), dt.time(23, 0))
RAMADAN_MONTH = 9
MAX_SEARCH_DAYS = 62  # a placement looks at most this many days either way (reminders are at most 30 days ahead)
ONE_MINUTE = dt.timedelta(minutes=1)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@lru_cache(maxsize=256)
def holiday_table(region: str, year: int) -> dict[dt.date, str]:
    """The public holidays of ``region`` (ISO country code) in ``year``: date -> English name.

    Cached per (region, year). A region the library does not know has none.
    """
    try:
        table = holidays.country_holidays(region.upper(), years=year, language="en_US")
    except NotImplementedError:
        return {}
    return dict(sorted(table.items()))


@lru_cache(maxsize=4096)
def is_ramadan(day: dt.date) -> bool:
    """Whether ``day`` falls in Ramadan (Umm al-Qura); False outside the calendar's range (1924-2077)."""
    try:
        return Gregorian(day.year, day.month, day.day).to_hijri().month == RAMADAN_MONTH
    except (OverflowError, ValueError):
        return False


def hours_text(start: dt.time, end: dt.time) -> str:
    return f"{start:%H:%M}–{end:%H:%M}"


@dataclass(frozen=True)
class DayHours:
    """One local date of the clinic: closed (and why), or open from ``start`` to ``end`` (exclusive)."""

    day: dt.date
    closed: str  # "Friday (weekend)", "Eid al-Fitr Holiday", ...; "" when open
    start: dt.time
    end: dt.time
    ramadan: bool

    @property
    def is_open(self) -> bool:
        return not self.closed

    def outside(self) -> str:
        """Why a time outside this open day's hours is not a sending time."""
        what = "Ramadan hours" if self.ramadan else "outside sending hours"
        return f"{what} {hours_text(self.start, self.end)}"


@dataclass(frozen=True)
class Placement:
    """Where a reminder goes: ``at_utc`` (None when no sending time fits), why it moved from the time
    its rule asked for ("" when it did not), and when nothing fits, why (``refused``)."""

    at_utc: dt.datetime | None
    moved_reason: str = ""
    refused: str = ""

    @property
    def found(self) -> bool:
        return self.at_utc is not None


@dataclass(frozen=True)
class ClinicHours:
    """A clinic's sending calendar in its own time zone (hashable: lookups are cached per day)."""

    timezone: str = "Asia/Riyadh"
    region: str = "SA"
    weekend_days: frozenset[int] = DEFAULT_WEEKEND
    send_start: dt.time = DEFAULT_SEND[0]
    send_end: dt.time = DEFAULT_SEND[1]
    ramadan_start: dt.time = DEFAULT_RAMADAN[0]
    ramadan_end: dt.time = DEFAULT_RAMADAN[1]
    public_holidays: bool = True
    closed_dates: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, calendar: Any | None, *, timezone: str, region: str) -> ClinicHours:
        """From a ``ClinicCalendar`` row (or anything with its fields); None: the defaults."""
        if calendar is None:
            return cls(timezone=timezone, region=region or "SA")
        return cls(
            timezone=timezone, region=region or "SA",
            weekend_days=frozenset(int(d) for d in calendar.weekend_days or ()),
            send_start=calendar.send_start, send_end=calendar.send_end,
            ramadan_start=calendar.ramadan_send_start, ramadan_end=calendar.ramadan_send_end,
            public_holidays=bool(calendar.public_holidays),
            closed_dates=frozenset(dt.date.fromisoformat(str(d)) for d in calendar.closed_dates or ()),
        )

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def day(self, day: dt.date) -> DayHours:
        """``day``'s hours (cached)."""
        return _day_hours(self, day)

    def holiday(self, day: dt.date) -> str:
        """The public holiday on ``day`` ("" when none, or when the clinic does not keep them)."""
        return holiday_table(self.region.upper(), day.year).get(day, "") if self.public_holidays else ""

    def why_not(self, at: dt.datetime) -> str:
        """Why ``at`` (aware, any zone) is not a sending time; "" when it is."""
        local = at.astimezone(self.zone)
        hours = self.day(local.date())
        if not hours.is_open:
            return hours.closed
        return "" if hours.start <= local.time() < hours.end else hours.outside()

    def is_sending_time(self, at: dt.datetime) -> bool:
        return not self.why_not(at)

    def holidays_between(self, first: dt.date, last: dt.date) -> list[tuple[dt.date, str]]:
        """The public holidays from ``first`` to ``last`` (inclusive) of the clinic's region."""
        found: list[tuple[dt.date, str]] = []
        for year in range(first.year, last.year + 1):
            found += [(d, n) for d, n in holiday_table(self.region.upper(), year).items() if first <= d <= last]
        return found

    def place(self, wanted_utc: dt.datetime, shift: ReminderShift, *, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Placement:
        """Where a reminder wanted at ``wanted_utc`` goes: then, if that is a sending time; else the last
        sending minute before it (``EARLIER``) or the first after it (``LATER``), never before
        ``not_before`` (now) nor at or after ``not_after`` (the appointment). At most
        ``MAX_SEARCH_DAYS`` days are looked at, so a long closure still answers at once."""
        reason = self.why_not(wanted_utc)
        if not reason:
            return self._bounded(wanted_utc, "", not_before, not_after, reason)
        local = wanted_utc.astimezone(self.zone)
        step = -1 if ReminderShift(shift) == ReminderShift.EARLIER else 1
        limit = not_before if step < 0 else not_after
        for days in range(MAX_SEARCH_DAYS + 1):
            day = local.date() + dt.timedelta(days=step * days)
            if limit is not None and (day < limit.astimezone(self.zone).date() if step < 0
                                      else day > limit.astimezone(self.zone).date()):
                break  # past ``not_before`` (now) or ``not_after`` (the appointment): nothing fits
            candidate = self._candidate(self.day(day), local, step)
            if candidate is not None and self.is_sending_time(candidate):
                return self._bounded(candidate, reason, not_before, not_after, reason)
        else:
            side = "before" if step < 0 else "after"
            return Placement(None, reason, f"no sending time {side} it ({reason})")
        return Placement(None, reason, f"its time had passed ({reason})" if step < 0
                         else f"no sending time before the appointment ({reason})")

    def _candidate(self, hours: DayHours, local: dt.datetime, step: int) -> dt.datetime | None:
        """The sending time of ``hours``' day nearest to ``local`` on the ``step`` side, in UTC."""
        if not hours.is_open:
            return None
        same_day = hours.day == local.date()
        if step < 0:
            if same_day and local.time() < hours.start:
                return None
            at = dt.datetime.combine(hours.day, hours.end, self.zone) - ONE_MINUTE
        else:
            if same_day and local.time() >= hours.end:
                return None
            at = dt.datetime.combine(hours.day, hours.start, self.zone)
        return at.astimezone(dt.UTC)

    @staticmethod
    def _bounded(at: dt.datetime, moved: str, not_before: dt.datetime | None, not_after: dt.datetime | None,
                 reason: str) -> Placement:
        if not_before is not None and at < not_before:
            why = f"its time had passed ({reason})" if reason else "its time had passed"
            return Placement(None, moved, why)
        if not_after is not None and at >= not_after:
            why = (f"no sending time before the appointment ({reason})" if reason
                   else "it would come after the appointment")
            return Placement(None, moved, why)
        return Placement(at.astimezone(dt.UTC), moved)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def _day_hours(hours: ClinicHours, day: dt.date) -> DayHours:
    ramadan = is_ramadan(day)
    start, end = (hours.ramadan_start, hours.ramadan_end) if ramadan else (hours.send_start, hours.send_end)
    if day.weekday() in hours.weekend_days:
        closed = f"{WEEKDAYS[day.weekday()]} (weekend)"
    elif day in hours.closed_dates:
        closed = "closed day (set by the clinic)"
    else:
        closed = hours.holiday(day)
    return DayHours(day=day, closed=closed, start=start, end=end, ramadan=ramadan)
