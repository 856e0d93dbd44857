"""Moving a message through its lifecycle: forward only, conditional, and always logged.

A transition is one ``UPDATE messages ... WHERE id = :id AND status = :current`` plus one
``message_logs`` row, in the caller's transaction. If another worker or a callback moved the
message first, the update matches nothing and the caller sees ``False``: nothing is applied
twice and nothing moves backwards.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from db.enums import MessageStatus, can_transition
from db.models import Message, MessageLog
from db.pgcopy import copy_rows
from db.types import utcnow

# Timestamp columns stamped when a message first reaches a status.
_STAMPS = {
    MessageStatus.QUEUED: "queued_at",
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
}


Executor = Session | Connection  # both work: the hot path uses plain connections (less overhead)


def log_event(
    session: Executor, message_id: uuid.UUID, tenant_id: uuid.UUID, event: str, *,
    from_status: MessageStatus | None = None, to_status: MessageStatus | None = None,
    provider: str | None = None, error_code: str | None = None, detail: str = "",
    at: dt.datetime | None = None,
) -> None:
    session.execute(insert(MessageLog.__table__).values(
        id=uuid.uuid4(), message_id=message_id, tenant_id=tenant_id, event=event, from_status=from_status,
        to_status=to_status, provider=provider, error_code=error_code, detail=detail[:2000],
        created_at=at or utcnow(),
    ))


def log_events(
    session: Executor, tenant_id: uuid.UUID, message_ids: Sequence[uuid.UUID], event: str, *,
    from_status: MessageStatus | None = None, to_status: MessageStatus | None = None, detail: str = "",
    at: dt.datetime | None = None,
) -> None:
    """The same event for many messages, as one bulk write (COPY on PostgreSQL): a job's 100,000
    messages paused took 117 s with a ``log_event`` each."""
    if not message_ids:
        return
    at = at or utcnow()
    rows = [{"id": uuid.uuid4(), "message_id": message_id, "tenant_id": tenant_id, "event": event,
             "from_status": from_status, "to_status": to_status, "provider": None, "error_code": None,
             "detail": detail[:2000], "created_at": at} for message_id in message_ids]
    connection = session.connection() if isinstance(session, Session) else session
    if connection.dialect.name == "postgresql":
        copy_rows(connection, MessageLog.__table__, rows)
    else:
        connection.execute(insert(MessageLog.__table__), rows)


def transition(
    session: Executor,
    message_id: uuid.UUID,
    to_status: MessageStatus,
    *,
    event: str = "status",
    detail: str = "",
    provider: str | None = None,
    error_code: str | None = None,
    values: dict[str, Any] | None = None,
    only_from: set[MessageStatus] | None = None,
    now: dt.datetime | None = None,
    expected: tuple[MessageStatus, uuid.UUID] | None = None,
) -> MessageStatus | None:
    """Move a message to ``to_status`` if that is a forward step from where it is now.

    Returns the status it moved from, or None when the step was not allowed (already there,
    already further on, or ``only_from`` excludes the current status). Retries a couple of
    times if the row changes under us between the read and the conditional update.
    ``expected`` (status, tenant id) saves the read when the caller knows the likely status.
    """
    now = now or utcnow()
    for attempt in range(3):
        if attempt == 0 and expected is not None:
            current, tenant_id = expected
        else:
            row = session.execute(
                select(Message.status, Message.tenant_id).where(Message.id == message_id)
            ).first()
            if row is None:
                return None
            current, tenant_id = MessageStatus(row[0]), row[1]
        if not can_transition(current, to_status) or (only_from is not None and current not in only_from):
            if attempt == 0 and expected is not None:
                continue  # the guess was wrong: read the real status
            return None
        changes: dict[str, Any] = {"status": to_status, "updated_at": now, **(values or {})}
        stamp = _STAMPS.get(to_status)
        if stamp and stamp not in changes:
            changes[stamp] = now
        if to_status.is_final and "finished_at" not in changes:
            changes["finished_at"] = now
        if error_code is not None and "error_code" not in changes:
            changes["error_code"] = error_code
        result = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == current)
            .values(changes)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            log_event(session, message_id, tenant_id, event, from_status=current, to_status=to_status,
                      provider=provider, error_code=error_code, detail=detail, at=now)
            return current
    return None
