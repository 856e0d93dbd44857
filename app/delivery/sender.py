"""Sending: check the rules, wait for a rate slot, claim the message, call the provider, record.

``deliver_batch`` runs in a worker job (RQ or in-process). It keeps up to
``DELIVERY_CONCURRENCY`` sends in flight so a slow provider (e.g. 200 ms a request) does not
hold sending below the rate limit. A message is claimed with a conditional update
(``queued -> sending``), so the same id delivered by two jobs or two workers is sent once; the
provider's answer is recorded in one transaction with the new status.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select, update

from app.delivery.error_codes import explain
from app.delivery.lifecycle import log_event, transition
from app.delivery.optouts import set_channel_opt_in
from app.delivery.policy import decide
from app.delivery.runtime import Runtime
from app.providers.base import (
    Accepted,
    AmbiguousOutcome,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
    ProviderError,
)
from db.enums import Channel, Language, MessageClass, MessageStatus, OptOutSource
from db.models import Message, MessageTemplate, NotificationPreference, Patient, Tenant
from db.session import fast_connection, system_session

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0


def backoff_seconds(attempt: int, *, minimum: float | None = None, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: up to base * 2^(attempt-1), capped, at least ``minimum``."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    value = (rng or random).uniform(ceiling / 2, ceiling)
    return max(value, minimum or 0.0)


def status_callback_url(runtime: Runtime, message_id: uuid.UUID) -> str | None:
    base = runtime.settings.public_base_url
    if not base:
        return None
    return f"{base.rstrip('/')}/twilio/status?mid={message_id}"


@dataclass(frozen=True)
class Loaded:
    """A message and what deciding and sending it needs, read in one query (detached)."""

    message: Message
    tenant: Tenant
    patient: Patient | None
    preference: NotificationPreference | None
    template: MessageTemplate | None


def load(runtime: Runtime, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, Loaded]:
    """Read the waiting messages among ``message_ids`` with their clinic, patient, preference, template."""
    with system_session(runtime.engine) as session:
        rows = session.execute(
            select(Message, Tenant, Patient, NotificationPreference, MessageTemplate)
            .join(Tenant, Tenant.id == Message.tenant_id)
            .outerjoin(Patient, Patient.id == Message.patient_id)
            .outerjoin(NotificationPreference, NotificationPreference.patient_id == Message.patient_id)
            .outerjoin(MessageTemplate, MessageTemplate.id == Message.template_id)
            .where(Message.id.in_(message_ids), Message.status == MessageStatus.QUEUED)
        ).all()
        session.expunge_all()
    return {row[0].id: Loaded(*row) for row in rows}


def deliver_batch(runtime: Runtime, message_ids: list[str], job_id: str | None = None) -> dict[str, int]:
    """Deliver each message in the batch (those still waiting); return counts by outcome."""
    if job_id is not None:
        with runtime.queue.running(job_id):
            return deliver_batch(runtime, message_ids)
    ids = [uuid.UUID(i) for i in message_ids]
    loaded = load(runtime, ids)
    outcomes = Counter({"skipped": len(ids) - len(loaded)})
    workers = max(1, min(runtime.settings.delivery_concurrency, len(loaded)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as pool:
        outcomes.update(pool.map(lambda item: _safe_deliver(runtime, item), loaded.values()))
    return {k: v for k, v in outcomes.items() if v}


def _safe_deliver(runtime: Runtime, item: Loaded) -> str:
    try:
        return deliver_loaded(runtime, item)
    except Exception:  # one message's bug must not stop the batch; the sweeper will look at it again
        log.exception("delivery of message %s failed unexpectedly", item.message.id)
        return "error"


def deliver_one(runtime: Runtime, message_id: uuid.UUID) -> str:
    """Deliver one message if it is still waiting. Returns what happened (for counting)."""
    item = load(runtime, [message_id]).get(message_id)
    return deliver_loaded(runtime, item) if item else "skipped"


def deliver_loaded(runtime: Runtime, item: Loaded) -> str:
    message, tenant, patient, preference, template = (
        item.message, item.tenant, item.patient, item.preference, item.template)
    message_id = message.id
    now = runtime.clock()
    if tenant.sending_paused:
        with system_session(runtime.engine) as session:  # wait; resume re-enqueues
            session.execute(update(Message).where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
                            .values(enqueued_at=None, delivery_job_id=None)
                            .execution_options(synchronize_session=False))
        return "paused"
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return "not_due"
    decision = decide(
        channel=Channel(message.channel), patient=patient, preference=preference, urgent=message.urgent,
        message_class=MessageClass(message.message_class), timezone=tenant.timezone, now=now,
    )
    if not decision.send:
        with system_session(runtime.engine) as session:
            if decision.defer_until is not None:
                moved = transition(session, message_id, MessageStatus.SCHEDULED, event="deferred",
                                   detail=decision.defer_reason or "", only_from={MessageStatus.QUEUED},
                                   values={"scheduled_at": decision.defer_until,
                                           "status_reason": decision.defer_reason or "", "enqueued_at": None,
                                           "delivery_job_id": None},
                                   expected=(MessageStatus.QUEUED, message.tenant_id))
                return "deferred" if moved else "skipped"
            moved = transition(session, message_id, MessageStatus.SUPPRESSED, event="suppressed",
                               detail=decision.suppress_reason or "", only_from={MessageStatus.QUEUED},
                               values={"status_reason": decision.suppress_reason or ""},
                               expected=(MessageStatus.QUEUED, message.tenant_id))
            return "suppressed" if moved else "skipped"

    try:
        provider = runtime.providers.for_channel(Channel(message.channel))
    except PermanentFailure as exc:
        with system_session(runtime.engine) as session:
            transition(session, message_id, MessageStatus.FAILED, event="rejected", detail=str(exc),
                       error_code=exc.code, values={"status_reason": str(exc)}, only_from={MessageStatus.QUEUED})
        return "failed"
    runtime.limiter.wait_for_slot(f"{provider.name}:{message.channel}", runtime.settings.rate_for(message.channel))
    claimed_at = runtime.clock()
    with fast_connection(runtime.engine) as session:
        claimed = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SENDING, claimed_at=claimed_at, attempts=Message.attempts + 1,
                    provider=provider.name, updated_at=claimed_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return "skipped"
        log_event(session, message_id, message.tenant_id, "sending", from_status=MessageStatus.QUEUED,
                  to_status=MessageStatus.SENDING, provider=provider.name,
                  detail=f"attempt {message.attempts + 1}", at=claimed_at)

    outgoing = build_outgoing(runtime, message, template, tenant.name)
    try:
        accepted = provider.send(outgoing)
    except ProviderError as exc:
        return record_failure(runtime, message, exc, attempt=message.attempts + 1, patient=patient)
    record_accepted(runtime, message, accepted, provider.name)
    return "sent"


def build_outgoing(runtime: Runtime, message: Message, template: MessageTemplate | None,
                   clinic_name: str = "") -> OutgoingMessage:
    """What the provider gets for a message row (also used to look a message up later)."""
    whatsapp_template = template is not None and message.channel == Channel.WHATSAPP and bool(
        template.whatsapp_content_sid)
    return OutgoingMessage(
        message_id=message.id, tenant_id=message.tenant_id, channel=Channel(message.channel),
        recipient=message.recipient, body=message.body, language=Language(message.language),
        subject=message.subject, status_callback_url=status_callback_url(runtime, message.id),
        content_sid=template.whatsapp_content_sid if whatsapp_template and template else None,
        content_variables=_content_variables(template, message.variables) if whatsapp_template and template else None,
        sender_name=clinic_name,
    )


def _content_variables(template: MessageTemplate, variables: dict) -> dict[str, str] | None:
    mapping = template.whatsapp_variable_map or {}
    if not template.whatsapp_content_sid:
        return None
    return {str(slot): str(variables.get(name, "")) for slot, name in mapping.items()}


def record_accepted(runtime: Runtime, message: Message, accepted: Accepted, provider_name: str) -> None:
    values = {
        "provider_message_id": accepted.provider_message_id, "price": accepted.price,
        "price_unit": accepted.price_unit, "sender": accepted.sender, "status_reason": "",
    }
    if accepted.segments is not None:
        values["segments"] = accepted.segments
    with fast_connection(runtime.engine, durable=False) as session:
        moved = transition(session, message.id, MessageStatus.SENT, event="accepted", provider=provider_name,
                           detail=f"accepted as {accepted.provider_message_id}", values=values,
                           only_from={MessageStatus.SENDING, MessageStatus.UNKNOWN},
                           expected=(MessageStatus.SENDING, message.tenant_id))
        if moved is None:  # a callback got there first: keep its status, fill in what it lacked
            session.execute(
                update(Message).where(Message.id == message.id, Message.provider_message_id.is_(None))
                .values({k: v for k, v in values.items() if k != "status_reason"})
                .execution_options(synchronize_session=False)
            )
    for delay, status, code in accepted.playback:
        runtime.queue.enqueue("worker.jobs.apply_provider_status", accepted.provider_message_id,
                              str(message.id), status.value, code, delay_seconds=delay)


def record_failure(runtime: Runtime, message: Message, exc: ProviderError, *, attempt: int,
                   patient: Patient | None) -> str:
    code = exc.code
    info = explain(code)
    reason = info.title if info else str(exc)
    now = runtime.clock()
    sending = (MessageStatus.SENDING, message.tenant_id)
    with system_session(runtime.engine) as session:
        if isinstance(exc, PermanentFailure):
            transition(session, message.id, MessageStatus.FAILED, event="rejected", provider=exc.provider,
                       error_code=code, detail=str(exc), values={"status_reason": reason},
                       only_from={MessageStatus.SENDING}, expected=sending)
            if exc.opt_out and message.patient_id:
                channel = Channel(message.channel)
                set_channel_opt_in(session, tenant_id=message.tenant_id, patient_id=message.patient_id,
                                   channel=channel, opted_in=False, source=OptOutSource.PROVIDER,
                                   reason=f"provider error {code}: {reason}")
            return "failed"
        if isinstance(exc, NotProcessed):
            if attempt >= runtime.settings.max_send_attempts:
                transition(session, message.id, MessageStatus.FAILED, event="gave_up", provider=exc.provider,
                           error_code=code, detail=str(exc),
                           values={"status_reason": f"{reason} Gave up after {attempt} attempts."},
                           only_from={MessageStatus.SENDING}, expected=sending)
                return "failed"
            delay = backoff_seconds(attempt, minimum=exc.retry_after)
            transition(session, message.id, MessageStatus.QUEUED, event="retry_scheduled", provider=exc.provider,
                       error_code=code, detail=f"{exc} (attempt {attempt}; next try in {delay:.0f} s)",
                       values={"next_attempt_at": now + dt.timedelta(seconds=delay), "enqueued_at": None,
                               "delivery_job_id": None,
                               "status_reason": f"{reason} Retrying automatically.", "queued_at": now},
                       only_from={MessageStatus.SENDING}, expected=sending)
            return "retry"
        if isinstance(exc, AmbiguousOutcome):
            transition(session, message.id, MessageStatus.UNKNOWN, event="ambiguous", provider=exc.provider,
                       error_code=code, detail=str(exc),
                       values={"status_reason": "The provider may have this message; it is being checked "
                                                "before anything is resent."},
                       only_from={MessageStatus.SENDING}, expected=sending)
            return "unknown"
    raise exc
