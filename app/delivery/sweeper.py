"""The dispatcher and sweeper of delivery, run by every maintenance pass (``app.services.maintenance``).

Each pass:
1. moves scheduled messages whose time has come to ``queued`` (clinics that are not paused);
2. enqueues queued messages that are due and on no live job: retries whose backoff is over,
   and messages whose job Redis lost or whose worker died (``JobQueue.alive``);
3. recovers messages stuck in ``sending`` (their worker died): asks the provider whether it has
   the message; if so adopts its status, if not (it was never sent) puts it back in the queue;
4. settles ``unknown`` messages by lookup; one the provider still does not know after
   ``UNKNOWN_RESEND_AFTER_SECONDS`` is queued again (the provider has no record of it).

Nothing one clinic or one provider does stops a pass: each step runs even when an earlier one
failed, the messages to look up are found per clinic (``clinics_with``, which reads clinic ids
only) and settled one by one, and a message whose settling fails is logged by its id and left for
the next pass. A provider that fails ``PROVIDER_FAILURES_PER_PASS`` lookups in a row for a clinic
is not asked again for that clinic's messages in this pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import or_, select

from app.delivery.callbacks import apply_provider_status
from app.delivery.dispatch import assign_jobs, enqueue, not_held
from app.delivery.lifecycle import transition
from app.delivery.routes import lookup_providers
from app.delivery.runtime import Runtime
from app.delivery.sender import build_outgoing
from app.providers.base import LookupResult, Provider, ProviderError
from db.enums import Channel, MessageStatus
from db.models import Message, MessageTemplate, Tenant
from db.session import system_session
from db.types import StrEnum

log = logging.getLogger(__name__)

MAX_PER_PASS = 20_000
MAX_LOOKUPS_PER_CLINIC = 1000
PROVIDER_FAILURES_PER_PASS = 3
T = TypeVar("T")


@dataclass
class SweepReport:
    promoted: int = 0
    enqueued: int = 0
    recovered_sending: int = 0
    settled_unknown: int = 0
    requeued: int = 0
    approvals_changed: int = 0
    resumed_expansions: int = 0
    completed_jobs: int = 0
    cancelled_settled: int = 0
    reminders_planned: int = 0  # reminders changed by the planner's safety net (app.services.reminders)
    reminders_sent: int = 0  # due reminders whose message was written
    lookup_failed: int = 0  # messages left for the next pass (their provider could not be asked, or an error)
    notes: list[str] = field(default_factory=list)


def _active_tenants():  # type: ignore[no-untyped-def]
    return select(Tenant.id).where(Tenant.sending_paused.is_(False))


def promote_scheduled(runtime: Runtime, now: dt.datetime) -> int:
    with system_session(runtime.engine) as session:
        ids = list(session.scalars(
            select(Message.id).where(
                Message.status == MessageStatus.SCHEDULED, Message.scheduled_at <= now,
                Message.tenant_id.in_(_active_tenants()),
            ).limit(MAX_PER_PASS)
        ))
        moved = [
            message_id for message_id in ids
            if transition(session, message_id, MessageStatus.QUEUED, event="due", detail="scheduled time reached",
                          only_from={MessageStatus.SCHEDULED},
                          values={"next_attempt_at": None, "status_reason": ""}, now=now)
        ]
        batches = assign_jobs(session, moved, now)
    enqueue(runtime.queue, batches)
    return len(moved)


def enqueue_waiting(runtime: Runtime, now: dt.datetime) -> int:
    """Queued messages that are due but on no live job: new jobs for them."""
    stale = now - dt.timedelta(seconds=runtime.settings.sweep_queued_after_seconds)
    due = or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now)
    waiting = (Message.status == MessageStatus.QUEUED, Message.tenant_id.in_(_active_tenants()), due, not_held())
    with system_session(runtime.engine) as session:
        unassigned = list(session.scalars(
            select(Message.id).where(*waiting, Message.delivery_job_id.is_(None))
            .order_by(Message.created_at).limit(MAX_PER_PASS)
        ))
        suspect_jobs = list(session.scalars(
            select(Message.delivery_job_id).where(*waiting, Message.delivery_job_id.is_not(None),
                                                  Message.enqueued_at <= stale).distinct().limit(1000)
        ))
        dead = set(suspect_jobs) - runtime.queue.alive(suspect_jobs) if suspect_jobs else set()
        orphaned = list(session.scalars(
            select(Message.id).where(*waiting, Message.delivery_job_id.in_(dead)).order_by(Message.created_at)
            .limit(MAX_PER_PASS)
        )) if dead else []
        if orphaned:
            log.warning("re-enqueueing %d messages whose delivery jobs were lost", len(orphaned))
        batches = assign_jobs(session, unassigned + orphaned, now)
    enqueue(runtime.queue, batches)
    return len(unassigned) + len(orphaned)


def _held_by_another(runtime: Runtime, provider_message_id: str, message_id: uuid.UUID) -> bool:
    """Whether another message (of any clinic: one account may carry several) already has this provider id."""
    with system_session(runtime.engine) as session:
        return session.scalar(select(Message.id).where(
            Message.provider_message_id == provider_message_id, Message.id != message_id).limit(1)) is not None


def _ask_providers(runtime: Runtime, message: Message, template: MessageTemplate | None,
                   tenant: Tenant) -> tuple[LookupResult | None, Provider]:
    """Ask the provider that has the message (or, after a failover, each one of the route that may)."""
    since = message.claimed_at or message.updated_at
    outgoing = build_outgoing(runtime, message, template)
    result: LookupResult | None = None
    providers = lookup_providers(runtime, tenant, Channel(message.channel), message.recipient, message.provider)
    for provider in providers:
        result = provider.lookup(outgoing, provider_message_id=message.provider_message_id, sent_after=since,
                                 taken=lambda sid: _held_by_another(runtime, sid, message.id))
        if result is None or result.found:
            return result, provider
    return result, providers[-1]


class Settled(StrEnum):
    """What looking one message up at its provider did."""

    SETTLED = "settled"  # the provider's status was applied
    REQUEUED = "requeued"  # the provider never received it: queued again
    WAITING = "waiting"  # not found yet; asked again on a later pass
    UNKNOWABLE = "unknowable"  # the provider cannot be asked (SMTP): staff decide
    LOOKUP_FAILED = "lookup_failed"  # the lookup itself failed
    ERROR = "error"  # settling failed for another reason


_NOT_AT_PROVIDER = {
    MessageStatus.SENDING: "the provider has no record of this message, so it was never sent; queued again",
    MessageStatus.UNKNOWN: "the provider has no record of this message after the grace period; queued again",
}


def _lookup_and_settle(runtime: Runtime, message: Message, template: MessageTemplate | None, tenant: Tenant,
                       now: dt.datetime, *, resend_if_missing: bool) -> Settled:
    try:
        result, provider = _ask_providers(runtime, message, template, tenant)
    except ProviderError as exc:
        log.warning("lookup of message %s failed: %s", message.id, exc.code)
        return Settled.LOOKUP_FAILED
    if result is None:  # the provider cannot be asked (SMTP): the outcome stays unknown for staff
        if message.status == MessageStatus.SENDING:
            with system_session(runtime.engine) as session:
                transition(session, message.id, MessageStatus.UNKNOWN, event="worker_lost",
                           detail="the worker stopped while sending; the provider cannot be asked",
                           values={"status_reason": "The sending worker stopped; we cannot tell whether the "
                                                    "provider took the message. Check before retrying."},
                           only_from={MessageStatus.SENDING}, now=now)
        return Settled.UNKNOWABLE
    if result.found and result.status is not None:
        apply_provider_status(
            runtime.engine, provider_message_id=result.provider_message_id, status=result.status,
            error_code=result.error_code, price=result.price, price_unit=result.price_unit,
            segments=result.segments, message_id=message.id, provider=provider.name, source="lookup",
        )
        return Settled.SETTLED
    if not resend_if_missing:
        return Settled.WAITING
    with system_session(runtime.engine) as session:
        # sending -> queued and unknown -> queued are both in the lifecycle table, for this proof only
        moved = transition(
            session, message.id, MessageStatus.QUEUED, event="not_at_provider",
            detail=_NOT_AT_PROVIDER[MessageStatus(message.status)],
            values={"next_attempt_at": None, "status_reason": ""},
            only_from={MessageStatus(message.status)}, now=now,
        )
        batches = assign_jobs(session, [message.id], now) if moved else []
    enqueue(runtime.queue, batches)
    return Settled.REQUEUED if moved else Settled.WAITING


def clinics_with(runtime: Runtime, status: MessageStatus, before: dt.datetime) -> list[uuid.UUID]:
    """The clinics that have messages in ``status`` claimed before ``before`` (reads clinic ids only)."""
    with system_session(runtime.engine) as session:
        return list(session.scalars(
            select(Message.tenant_id).where(Message.status == status, Message.claimed_at <= before).distinct()
        ))


def _rows(runtime: Runtime, clinic: uuid.UUID, status: MessageStatus,
          before: dt.datetime) -> list[tuple[Message, MessageTemplate | None, Tenant]]:
    with system_session(runtime.engine) as session:
        rows = session.execute(
            select(Message, MessageTemplate, Tenant)
            .join(Tenant, Tenant.id == Message.tenant_id)
            .outerjoin(MessageTemplate, MessageTemplate.id == Message.template_id)
            .where(Message.tenant_id == clinic, Message.status == status, Message.claimed_at <= before)
            .order_by(Message.claimed_at).limit(MAX_LOOKUPS_PER_CLINIC)
        ).all()
        session.expunge_all()
        return [(m, t, c) for m, t, c in rows]


@dataclass
class _Tally:
    settled: int = 0
    requeued: int = 0
    failed: int = 0

    def __iadd__(self, other: _Tally) -> _Tally:
        self.settled += other.settled
        self.requeued += other.requeued
        self.failed += other.failed
        return self


def _settle_clinic(runtime: Runtime, clinic: uuid.UUID, status: MessageStatus, before: dt.datetime,
                   now: dt.datetime, resend_if_missing: Callable[[Message], bool]) -> _Tally:
    """Look up and settle one clinic's messages in ``status``, each on its own."""
    tally = _Tally()
    failures: dict[str, int] = {}  # provider -> lookups failed in a row for this clinic
    for message, template, tenant in _rows(runtime, clinic, status, before):
        if message.provider and failures.get(message.provider, 0) >= PROVIDER_FAILURES_PER_PASS:
            tally.failed += 1  # that provider is not answering for this clinic: next pass
            continue
        try:
            outcome = _lookup_and_settle(runtime, message, template, tenant, now,
                                         resend_if_missing=resend_if_missing(message))
        except Exception as exc:  # noqa: BLE001 - one message never stops the others
            log.warning("settling message %s failed: %s", message.id, type(exc).__name__)
            outcome = Settled.ERROR
        if outcome in (Settled.LOOKUP_FAILED, Settled.ERROR):
            tally.failed += 1
            if message.provider:
                failures[message.provider] = failures.get(message.provider, 0) + 1
        elif message.provider:
            failures[message.provider] = 0
        tally.settled += outcome == Settled.SETTLED
        tally.requeued += outcome == Settled.REQUEUED
    return tally


def _settle_each_clinic(runtime: Runtime, status: MessageStatus, before: dt.datetime, now: dt.datetime,
                        resend_if_missing: Callable[[Message], bool]) -> _Tally:
    total = _Tally()
    for clinic in clinics_with(runtime, status, before):
        try:
            total += _settle_clinic(runtime, clinic, status, before, now, resend_if_missing)
        except Exception as exc:  # noqa: BLE001 - one clinic never stops the others
            log.warning("settling the %s messages of clinic %s failed: %s", status.value, clinic,
                        type(exc).__name__)
            total.failed += 1
    return total


def recover_sending(runtime: Runtime, now: dt.datetime) -> tuple[int, int]:
    tally = _recover_sending(runtime, now)
    return tally.settled, tally.requeued


def _recover_sending(runtime: Runtime, now: dt.datetime) -> _Tally:
    before = now - dt.timedelta(seconds=runtime.settings.sweep_sending_after_seconds)
    return _settle_each_clinic(runtime, MessageStatus.SENDING, before, now, lambda _message: True)


def settle_unknown(runtime: Runtime, now: dt.datetime) -> tuple[int, int]:
    tally = _settle_unknown(runtime, now)
    return tally.settled, tally.requeued


def _settle_unknown(runtime: Runtime, now: dt.datetime) -> _Tally:
    resend_before = now - dt.timedelta(seconds=runtime.settings.unknown_resend_after_seconds)
    return _settle_each_clinic(runtime, MessageStatus.UNKNOWN, now - dt.timedelta(seconds=5), now,
                               lambda message: (message.claimed_at or now) <= resend_before)


def run_step(report: SweepReport, name: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Run one step of the pass; a failure is logged and noted, and the next step still runs."""
    try:
        return fn(*args)
    except Exception as exc:  # each step runs whatever happened to the one before
        log.exception("sweep step '%s' failed", name)
        report.notes.append(f"{name} failed: {type(exc).__name__}")
        return None


def run_sweep(runtime: Runtime, now: dt.datetime | None = None) -> SweepReport:
    """One pass of the dispatcher and sweeper (safe to run concurrently; every step is conditional)."""
    now = now or runtime.clock()
    report = SweepReport()
    report.promoted = run_step(report, "promote scheduled", promote_scheduled, runtime, now) or 0
    sending = run_step(report, "recover sending", _recover_sending, runtime, now) or _Tally()
    unknown = run_step(report, "settle unknown", _settle_unknown, runtime, now) or _Tally()
    report.recovered_sending, report.settled_unknown = sending.settled, unknown.settled
    report.requeued = sending.requeued + unknown.requeued
    report.lookup_failed = sending.failed + unknown.failed
    report.enqueued = run_step(report, "enqueue queued", enqueue_waiting, runtime, now) or 0
    return report
