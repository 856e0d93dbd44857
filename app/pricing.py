"""What a message counts and costs before the provider says: segments per channel and the estimate.

One rule for the template editor's estimate, the bulk wizard's review, the ``segments`` stored with
each message, and the prices the dev outbox and the demo history charge:

- **SMS**: the GSM-7 / UCS-2 parts of ``app.segments``; priced per part.
- **WhatsApp**: one per message (never split); priced per message.
- **E-mail**: no segments; priced per message (usually nothing).

Estimates use the clinic-wide settings (``sms_price_per_segment``, ``whatsapp_price_per_message``,
``email_price_per_message``). What a provider reports it charged is stored per message and is what
Analytics adds up; this module never overrides it.
"""

from __future__ import annotations

from decimal import Decimal

from app.config import Settings, get_settings
from app.segments import count_segments
from db.enums import Channel

LIST_PRICES: dict[Channel, Decimal] = {
    Channel.SMS: Decimal("0.0395"),  # per segment (Twilio's list price to Saudi Arabia)
    Channel.WHATSAPP: Decimal("0.0050"),  # per message
    Channel.EMAIL: Decimal("0"),
}
"""What the dev outbox and the demo history charge, as a provider would report it."""


def segments(channel: Channel | str, text: str) -> int:
    """The segments a message of ``text`` counts on ``channel`` (0 for an empty text)."""
    channel = Channel.parse(channel)
    if channel == Channel.SMS:
        return count_segments(text).segments
    if channel == Channel.WHATSAPP:
        return 1 if text else 0
    return 0


def estimate(channel: Channel | str, *, segments: int, messages: int, settings: Settings | None = None) -> float:
    """The estimated cost of ``messages`` messages with ``segments`` segments in all, in ``price_currency``."""
    channel = Channel.parse(channel)
    settings = settings or get_settings()
    if channel == Channel.SMS:
        return round(segments * settings.sms_price_per_segment, 6)
    per_message = (settings.whatsapp_price_per_message if channel == Channel.WHATSAPP
                   else settings.email_price_per_message)
    return round(messages * per_message, 6)


def list_price(channel: Channel | str, segments: int) -> Decimal:
    """What the dev outbox (and the demo) charge for one message of ``segments`` segments."""
    channel = Channel.parse(channel)
    return LIST_PRICES[channel] * segments if channel == Channel.SMS else LIST_PRICES[channel]
