"""The development outbox: "delivers" without a network and plays back realistic outcomes.

Used by the embedded default so a demo behaves like production. The outcome depends on the
recipient, so a demo can show each path on purpose:

| recipient ends in | outcome |
|---|---|
| ``00`` | refused at once: 21211 invalid number |
| ``03`` | refused at once: 21610 the patient replied STOP |
| ``01`` | accepted, later ``undelivered`` with 30003 (handset unreachable) |
| ``02`` | accepted, later ``failed`` with 30008 (unknown carrier error) |
| anything else | accepted, later ``delivered`` (WhatsApp: then ``read``) |

E-mail is accepted and stays ``sent`` (mail servers report no delivery), unless the address
starts with ``bounce`` (refused with 550).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from decimal import Decimal

from app import pricing
from app.providers.base import Accepted, LookupResult, OutgoingMessage, PermanentFailure
from db.enums import Channel, MessageStatus


class DevOutboxProvider:
    name = "dev"

    def __init__(self, channel: Channel, *, delay_seconds: float = 2.0) -> None:
        self.channel = channel
        self._delay = delay_seconds
        self._sent: dict[str, Accepted] = {}
        self._lock = threading.Lock()
        self.outbox: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> Accepted:
        recipient = message.recipient
        if self.channel == Channel.EMAIL:
            if recipient.lower().startswith("bounce"):
                raise PermanentFailure("550 mailbox unavailable", code="550", provider=self.name)
            accepted = Accepted(self._sid(message, "EM"), MessageStatus.SENT, Decimal("0"), "USD", 0, "dev@outbox")
            return self._record(message, accepted)
        if recipient.endswith("00"):
            raise PermanentFailure("The 'To' number is not a valid phone number.", code="21211", provider=self.name)
        if recipient.endswith("03"):
            raise PermanentFailure("Attempt to send to unsubscribed recipient", code="21610", provider=self.name,
                                   opt_out=True)
        segments = pricing.segments(self.channel, message.body) or 1
        price = pricing.list_price(self.channel, segments)
        d = self._delay
        if recipient.endswith("01"):
            playback: tuple[tuple[float, MessageStatus, str | None], ...] = ((d, MessageStatus.UNDELIVERED, "30003"),)
        elif recipient.endswith("02"):
            playback = ((d, MessageStatus.FAILED, "30008"),)
        elif self.channel == Channel.WHATSAPP and int(recipient[-1]) % 2 == 0:
            playback = ((d, MessageStatus.DELIVERED, None), (d * 2.5, MessageStatus.READ, None))
        else:
            playback = ((d, MessageStatus.DELIVERED, None),)
        accepted = Accepted(self._sid(message, "SM"), MessageStatus.SENT, price, "USD", segments, "dev-outbox",
                            playback)
        return self._record(message, accepted)

    def _sid(self, message: OutgoingMessage, prefix: str) -> str:
        return prefix + hashlib.sha256(message.message_id.bytes).hexdigest()[:32]

    def _record(self, message: OutgoingMessage, accepted: Accepted) -> Accepted:
        with self._lock:
            self._sent[str(message.message_id)] = accepted
            self.outbox.append(message)
            del self.outbox[:-1000]  # keep the last thousand for inspection
        return accepted

    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime, taken: Callable[[str], bool] | None = None) -> LookupResult | None:
        with self._lock:
            accepted = self._sent.get(str(message.message_id))
        if accepted is None:
            return LookupResult(found=False)
        final = accepted.playback[-1][1] if accepted.playback else accepted.status
        code = accepted.playback[-1][2] if accepted.playback else None
        return LookupResult(True, accepted.provider_message_id, final, code, accepted.price, accepted.price_unit,
                            accepted.segments)
