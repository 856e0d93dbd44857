"""How Twilio writes what the fake hands out: SIDs, RFC 2822 dates and prices."""

from __future__ import annotations

import datetime as dt
import email.utils
import uuid


def rfc2822(moment: dt.datetime) -> str:
    """A date as Twilio's resources write it (``Tue, 07 May 2024 10:00:00 +0000``)."""
    return email.utils.format_datetime(moment)


def utc_now() -> dt.datetime:
    """The current UTC time to the second (Twilio's resolution)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_sid(prefix: str) -> str:
    """A fresh SID: `prefix` (SM, MM, RQ ...) and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def format_price(price: str | float | None) -> str | None:
    """A price as Twilio writes it (five decimals); strings and None pass through."""
    if price is None or isinstance(price, str):
        return price
    return f"{price:.5f}"
