"""Provider status reports (callbacks, dev playback, lookups) applied forward-only and idempotently."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from sqlalchemy import Engine, select, update

from app.delivery.error_codes import explain
from app.delivery.lifecycle import transition
from db.enums import MessageStatus
from db.models import Message
from db.session import system_session

Outcome = Literal["applied", "duplicate", "unknown_message"]


def apply_provider_status(
    engine: Engine,
    *,
    provider_message_id: str | None,
    status: MessageStatus,
    error_code: str | None = None,
    price: Decimal | None = None,
    price_unit: str | None = None,
    segments: int | None = None,
    message_id: uuid.UUID | None = None,
    provider: str = "twilio",
    source: str = "callback",
) -> Outcome:
    """Apply one status report. A repeat, or a status behind the current one, changes nothing.

    The message is found by the provider's id, or by our own id (carried in the callback URL)
    when the report arrives before we recorded the provider's id.
    """
    with system_session(engine) as session:
        message = None
        if provider_message_id:
            message = session.scalar(select(Message).where(Message.provider_message_id == provider_message_id))
        if message is None and message_id is not None:
            message = session.get(Message, message_id)
            if message is not None and message.provider_message_id not in (None, provider_message_id):
                message = None  # the id in the URL does not belong to this provider message
        if message is None:
            return "unknown_message"
        changed = False
        extra: dict = {}
        if provider_message_id and message.provider_message_id is None:
            extra["provider_message_id"] = provider_message_id
        if price is not None and message.price is None:
            extra["price"], extra["price_unit"] = price, price_unit or message.price_unit
        if segments and not message.segments:
            extra["segments"] = segments
        values = dict(extra)
        if status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
            info = explain(error_code)
            values["status_reason"] = info.title if info else "The provider could not deliver the message."
        elif status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ):
            values["status_reason"] = ""
        detail = f"{source}: {status.value}" + (f" (error {error_code})" if error_code else "")
        moved = transition(session, message.id, status, event=source, provider=provider, error_code=error_code,
                           detail=detail, values=values)
        changed = moved is not None
        if not changed and extra:
            session.execute(update(Message).where(Message.id == message.id).values(extra)
                            .execution_options(synchronize_session=False))
            changed = True
        return "applied" if changed else "duplicate"

