"""Applying many provider status reports at once (the callback service's hot path on PostgreSQL).

One statement per round locks the messages, checks each step against the lifecycle table,
moves them and writes their lifecycle events; reports that do not apply there (an unknown id,
a report that must be matched by our own message id, a price to fill in) go through
``apply_provider_status`` one by one. Repeats and steps backwards change nothing, as always.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine, bindparam, select, text

from app.delivery.callbacks import Outcome, apply_provider_status
from app.providers.error_codes import explain
from db.enums import ALLOWED_TRANSITIONS, FAILED_STATUSES, FINAL_STATUSES, MessageStatus
from db.models import Message
from db.session import SYSTEM, scoped_connection
from db.types import utcnow


@dataclass(frozen=True)
class StatusReport:
    provider_message_id: str
    status: MessageStatus
    error_code: str | None = None
    price: Decimal | None = None
    price_unit: str | None = None
    segments: int | None = None
    message_id: uuid.UUID | None = None
    provider: str = "twilio"
    source: str = "callback"


_PAIRS = ", ".join(f"('{a.value}', '{b.value}')" for a, targets in ALLOWED_TRANSITIONS.items() for b in targets)
_FINAL = ", ".join(f"'{s.value}'" for s in MessageStatus if s in FINAL_STATUSES)
_MANY_SQL = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset(CAST(:reports AS jsonb))
        AS r(sid text, new text, code text, reason text, source text, provider text, detail text)
), target AS (
    SELECT m.id, m.tenant_id, m.status AS old, input.*
    FROM messages m JOIN input ON m.provider_message_id = input.sid
    WHERE (m.status, input.new) IN ({_PAIRS})
    FOR UPDATE OF m
), moved AS (
    UPDATE messages AS m SET
        status = t.new, updated_at = :now, error_code = COALESCE(t.code, m.error_code), status_reason = t.reason,
        sent_at = CASE WHEN t.new = 'sent' THEN COALESCE(m.sent_at, :now) ELSE m.sent_at END,
        delivered_at = CASE WHEN t.new = 'delivered' THEN COALESCE(m.delivered_at, :now) ELSE m.delivered_at END,
        read_at = CASE WHEN t.new = 'read' THEN COALESCE(m.read_at, :now) ELSE m.read_at END,
        finished_at = CASE WHEN t.new IN ({_FINAL}) THEN COALESCE(m.finished_at, :now) ELSE m.finished_at END
    FROM target t WHERE m.id = t.id
    RETURNING m.id, m.tenant_id, t.old, t.new, t.code, t.source, t.provider, t.detail, t.sid
), logged AS (
    INSERT INTO message_logs (id, message_id, tenant_id, event, from_status, to_status, provider, error_code,
                              detail, created_at)
    SELECT gen_random_uuid(), id, tenant_id, source, old, new, provider, code, detail, :now FROM moved
)
SELECT sid FROM moved
"""


def _reason(report: StatusReport) -> str:
    if report.status in FAILED_STATUSES:
        info = explain(report.error_code)
        return info.title if info else "The provider could not deliver the message."
    return ""


def _rounds(reports: list[StatusReport]) -> list[list[tuple[int, StatusReport]]]:
    """Split so that no provider id appears twice in one statement (arrival order kept)."""
    rounds: list[list[tuple[int, StatusReport]]] = []
    seen: dict[str, int] = {}
    for index, report in enumerate(reports):
        depth = seen.get(report.provider_message_id, 0)
        seen[report.provider_message_id] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append((index, report))
    return rounds


def apply_many(engine: Engine, reports: list[StatusReport]) -> list[Outcome]:
    """Apply reports in order; the outcome of each."""
    outcomes: list[Outcome | None] = [None] * len(reports)
    if engine.dialect.name == "postgresql" and reports:
        import json

        now = utcnow()
        with scoped_connection(engine, SYSTEM) as connection:  # callbacks span clinics: ids and statuses only
            for round_ in _rounds(reports):
                payload = json.dumps([{
                    "sid": r.provider_message_id, "new": r.status.value, "code": r.error_code, "reason": _reason(r),
                    "source": r.source, "provider": r.provider,
                    "detail": f"{r.source}: {r.status.value}" + (f" (error {r.error_code})" if r.error_code else ""),
                } for _, r in round_])
                applied = set(connection.scalars(text(_MANY_SQL), {"reports": payload, "now": now}))
                for index, report in round_:
                    if report.provider_message_id in applied:
                        outcomes[index] = Outcome.APPLIED
            known = set(connection.scalars(
                select(Message.provider_message_id).where(
                    Message.provider_message_id.in_(bindparam("sids", expanding=True)))
                , {"sids": [r.provider_message_id for i, r in enumerate(reports) if outcomes[i] is None]}))
        for index, report in enumerate(reports):
            if outcomes[index] is None and report.provider_message_id in known and report.price is None:
                outcomes[index] = Outcome.DUPLICATE  # known, nothing new: a repeat or a step backwards
    for index, report in enumerate(reports):
        if outcomes[index] is None or (outcomes[index] == Outcome.APPLIED and report.price is not None):
            result = apply_provider_status(
                engine, provider_message_id=report.provider_message_id, status=report.status,
                error_code=report.error_code, price=report.price, price_unit=report.price_unit,
                segments=report.segments, message_id=report.message_id, provider=report.provider,
                source=report.source)
            outcomes[index] = outcomes[index] if outcomes[index] == Outcome.APPLIED else result
    return [o or Outcome.DUPLICATE for o in outcomes]
