"""Provider status reports (callbacks, dev playback, lookups) applied forward-only and idempotently."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from sqlalchemy import Engine, select, text, update

from app.delivery.error_codes import explain
from app.delivery.lifecycle import transition
from db.enums import MessageStatus, can_transition
from db.models import Message
from db.session import fast_connection, system_session
from db.types import utcnow

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
    if provider_message_id and engine.dialect.name == "postgresql":
        if _fast_forward(engine, provider_message_id, status, error_code, price, price_unit, segments,
                         provider, source):
            return "applied"
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


_STAMP_COLUMNS = {MessageStatus.SENT: "sent_at", MessageStatus.DELIVERED: "delivered_at",
                  MessageStatus.READ: "read_at"}
_FAST_SQL: dict[MessageStatus, str] = {}


def _fast_sql(status: MessageStatus) -> str:
    """One round trip for the common case on PostgreSQL: lock, check, move and log together."""
    if status not in _FAST_SQL:
        sets = ["status = :new", "updated_at = :now", "error_code = COALESCE(:code, m.error_code)",
                "status_reason = :reason", "price = COALESCE(m.price, :price)",
                "price_unit = COALESCE(m.price_unit, :price_unit)",
                "segments = CASE WHEN m.segments = 0 AND :segments > 0 THEN :segments ELSE m.segments END"]
        if stamp := _STAMP_COLUMNS.get(status):
            sets.append(f"{stamp} = COALESCE(m.{stamp}, :now)")
        if status.is_final:
            sets.append("finished_at = COALESCE(m.finished_at, :now)")
        allowed = sorted(s.value for s in MessageStatus if can_transition(s, status))
        _FAST_SQL[status] = f"""
            WITH target AS (
                SELECT id, tenant_id, status FROM messages WHERE provider_message_id = :sid FOR UPDATE
            ), moved AS (
                UPDATE messages AS m SET {", ".join(sets)}
                FROM target WHERE m.id = target.id AND target.status IN ({", ".join(f"'{a}'" for a in allowed)})
                RETURNING m.id, m.tenant_id, target.status AS old_status
            )
            INSERT INTO message_logs (id, message_id, tenant_id, event, from_status, to_status, provider,
                                      error_code, detail, created_at)
            SELECT gen_random_uuid(), id, tenant_id, :source, old_status, :new, :provider, :code, :detail, :now
            FROM moved RETURNING message_id"""
    return _FAST_SQL[status]


def _fast_forward(engine: Engine, sid: str, status: MessageStatus, error_code: str | None, price: Decimal | None,
                  price_unit: str | None, segments: int | None, provider: str, source: str) -> bool:
    """The forward step for a message we know by its provider id; False when not applied (then the
    general path decides: unknown id, a repeat, a step backwards, or only a price to fill in)."""
    if not any(can_transition(s, status) for s in MessageStatus):
        return False
    info = explain(error_code) if status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED) else None
    reason = info.title if info else ("The provider could not deliver the message."
                                      if status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED) else "")
    with fast_connection(engine) as connection:
        row = connection.execute(text(_fast_sql(status)), {
            "sid": sid, "new": status.value, "now": utcnow(), "code": error_code, "reason": reason,
            "price": price, "price_unit": price_unit, "segments": segments or 0, "source": source,
            "provider": provider, "detail": f"{source}: {status.value}" + (f" (error {error_code})" if error_code
                                                                           else ""),
        }).first()
    return row is not None
