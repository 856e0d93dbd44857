"""Whether a message may go now: opt-outs, disabled channels, inactive patients, quiet hours,
and the class rules (promotional: recorded consent and a daytime window in the clinic's zone)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from db.enums import Channel, MessageClass
from db.models import NotificationPreference, Patient


@dataclass(frozen=True)
class Decision:
    send: bool
    suppress_reason: str | None = None
    defer_until: dt.datetime | None = None
    defer_reason: str | None = None


SEND = Decision(send=True)

NO_PROMOTIONAL_CONSENT = "No recorded consent to promotional messages."

# Saudi operators only deliver promotional SMS in the daytime; sources disagree on the exact
# bounds, 09:00-19:00 Riyadh time satisfies all of them (PROMOTIONAL_WINDOW_START/END).
DEFAULT_PROMOTIONAL_WINDOW = (dt.time(9, 0), dt.time(19, 0))


def promotional_window_start(
    now: dt.datetime, start: dt.time, end: dt.time, timezone: str
) -> dt.datetime | None:
    """If ``now`` is outside the sending window [start, end) in the clinic's time zone, when the
    next window opens (UTC); None when sending is allowed now. ``start == end`` means no window."""
    if start == end:
        return None
    # Outside [start, end) is the quiet window [end, start); its end is the next window start.
    return quiet_window_end(now, end, start, timezone)


def quiet_window_end(
    now: dt.datetime, start: dt.time, end: dt.time, timezone: str
) -> dt.datetime | None:
    """If ``now`` falls in the quiet window [start, end) in the clinic's time zone, when it ends (UTC)."""
    if start == end:
        return None
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        end_day = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    end_local = dt.datetime.combine(end_day, end, tzinfo=local.tzinfo)
    return end_local.astimezone(dt.UTC)


def decide(
    *,
    channel: Channel,
    patient: Patient | None,
    preference: NotificationPreference | None,
    urgent: bool,
    message_class: MessageClass,
    timezone: str,
    now: dt.datetime,
    promotional_window: tuple[dt.time, dt.time] = DEFAULT_PROMOTIONAL_WINDOW,
) -> Decision:
    """The rule for one message to one recipient, evaluated just before sending.

    Suppressed (never sent): an inactive or deleted patient, an opt-out of the channel, a
    promotional message without recorded consent (a recipient with no preferences, including a
    number that matches no patient, has none). Deferred (sent later): a promotional message
    outside ``promotional_window`` (clinic time; ``urgent`` does not bypass it), then any
    non-urgent message in the patient's own quiet hours. Service messages have no window.
    """
    if patient is not None and (patient.deleted_at is not None or not patient.is_active):
        return Decision(send=False, suppress_reason="The patient record is inactive or deleted.")
    if preference is not None:
        if not preference.allows(channel):
            when = preference.opted_out_at.strftime("%Y-%m-%d") if preference.opted_out_at else None
            source = preference.opt_out_source.value.replace("_", " ") if preference.opt_out_source else None
            extra = f" (since {when}, source: {source})" if when and source else ""
            return Decision(send=False, suppress_reason=f"The patient opted out of {channel.label}{extra}.")
    # Consent is recorded only on a patient's preferences: no preferences (a patient who never
    # gave any, or a number that matches no patient) means no consent on record.
    if message_class == MessageClass.PROMOTIONAL and (preference is None or not preference.promotional_consent):
        return Decision(send=False, suppress_reason=NO_PROMOTIONAL_CONSENT)
    if message_class == MessageClass.PROMOTIONAL:
        start, end = promotional_window
        opens = promotional_window_start(now, start, end, timezone)
        if opens is not None:
            return Decision(
                send=False, defer_until=opens,
                defer_reason=f"Promotional messages are sent between {start.strftime('%H:%M')} and "
                             f"{end.strftime('%H:%M')} clinic time.",
            )
    if preference is not None:
        if not urgent and preference.quiet_hours_start and preference.quiet_hours_end:
            until = quiet_window_end(now, preference.quiet_hours_start, preference.quiet_hours_end, timezone)
            if until is not None:
                return Decision(
                    send=False, defer_until=until,
                    defer_reason=f"Quiet hours until {preference.quiet_hours_end.strftime('%H:%M')} "
                                 "(patient's preference).",
                )
    return SEND
