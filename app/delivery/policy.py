"""Whether a message may go now: opt-outs, disabled channels, inactive patients, quiet hours."""

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
) -> Decision:
    """The rule for one message to one recipient, evaluated just before sending."""
    if patient is not None and (patient.deleted_at is not None or not patient.is_active):
        return Decision(send=False, suppress_reason="The patient record is inactive or deleted.")
    if preference is not None:
        if not preference.allows(channel):
            when = preference.opted_out_at.strftime("%Y-%m-%d") if preference.opted_out_at else None
            source = preference.opt_out_source.value.replace("_", " ") if preference.opt_out_source else None
            extra = f" (since {when}, source: {source})" if when and source else ""
            return Decision(send=False, suppress_reason=f"The patient opted out of {channel.label}{extra}.")
        if message_class == MessageClass.PROMOTIONAL and not preference.promotional_consent:
            return Decision(send=False, suppress_reason="No recorded consent to promotional messages.")
        if not urgent and preference.quiet_hours_start and preference.quiet_hours_end:
            until = quiet_window_end(now, preference.quiet_hours_start, preference.quiet_hours_end, timezone)
            if until is not None:
                return Decision(
                    send=False, defer_until=until,
                    defer_reason=f"Quiet hours until {preference.quiet_hours_end.strftime('%H:%M')} "
                                 "(patient's preference).",
                )
    elif message_class == MessageClass.PROMOTIONAL and patient is not None:
        return Decision(send=False, suppress_reason="No recorded consent to promotional messages.")
    return SEND
