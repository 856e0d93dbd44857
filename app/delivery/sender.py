"""Sending: check the rules, wait for a rate slot, claim the message, call the provider, record.

``deliver_batch`` runs in a worker job (RQ or in-process). It keeps up to
``DELIVERY_CONCURRENCY`` sends in flight so a slow provider (e.g. 200 ms a request) does not
hold sending below the rate limit. Each message goes through its clinic's route (``routes``):
the next provider of the route is tried only when the previous one raised ``NotProcessed`` that
allows failover (it definitely does not have the message); never after an ambiguous outcome or a
permanent failure, so a message is accepted by at most one provider. A message is claimed with a conditional update
(``queued -> sending``), so the same id delivered by two jobs or two workers is sent once; the
provider's answer is recorded in one transaction with the new status.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, literal, select, update

from app.config import Settings
from app.delivery.dispatch import lock_jobs_of, not_held
from app.delivery.fallback import fall_back_to_sms, may_fall_back
from app.delivery.lifecycle import log_event, transition
from app.delivery.optouts import set_channel_opt_in
from app.delivery.policy import decide
from app.delivery.routes import Route, RouteResolver
from app.delivery.runtime import Runtime
from app.providers.base import (
    Accepted,
    AmbiguousOutcome,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
    Provider,
    ProviderError,
)
from app.providers.error_codes import explain
from db.enums import Channel, Language, MessageClass, MessageStatus, OptOutSource, may_move_to, sources_of
from db.models import Message, MessageLog, MessageTemplate, NotificationPreference, Patient, Tenant
from db.session import clinics_of, scoped_connection, tenant_session

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0
RECORD_EVERY_SECONDS = 0.25  # accepted sends are recorded in groups at least this often (a pause waits for them)


def claim_lease(settings: Settings) -> dt.timedelta:
    """How long after its claim a message may still be handed to the provider.

    The sweeper treats a message ``sending`` for ``SWEEP_SENDING_AFTER_SECONDS`` as its worker's
    loss: it asks the provider and, finding nothing, queues it again. A request may only start while
    it can also end (``PROVIDER_TIMEOUT_SECONDS``) well before that, with half the rest left for
    clocks that differ between machines; otherwise a stalled worker (CPU starved, blocked behind a
    lost machine's locks) could send a message the sweeper had already handed to another worker.
    """
    return dt.timedelta(seconds=max(0.0, settings.sweep_sending_after_seconds
                                    - settings.provider_timeout_seconds) / 2)


class ClaimExpired:
    """The claim grew older than ``claim_lease`` before the request could start: the message is
    left in ``sending`` for the sweeper (which finds nothing at the provider and queues it again)."""
LOAD_CHUNK = 50


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


def load(runtime: Runtime, clinic: uuid.UUID, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, Loaded]:
    """Read the waiting messages among ``message_ids`` with their clinic, patient, preference, template
    (inside ``clinic``: another clinic's message, patient or template is never read)."""
    with tenant_session(runtime.engine, clinic) as session:
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


def deliver_batch(runtime: Runtime, message_ids: list[str], job_id: str | None = None, *,
                  detach_tail: bool = False) -> dict[str, int]:
    """Deliver each message in the batch that is still waiting; return counts by outcome.

    The batch is read in one query; messages are claimed a group at a time (one conditional
    ``UPDATE ... RETURNING``) just ahead of the senders, up to ``DELIVERY_CONCURRENCY`` requests
    are in flight, each waiting for its rate slot just before its request (so pacing is not
    blurred by database time), and accepted outcomes are recorded a group at a time. A crash
    between sending and recording leaves ``sending`` rows that the sweeper settles by asking
    the provider.

    ``detach_tail`` (the RQ worker): once every message has been handed to a sender, the batch
    returns and a background thread waits for the last requests' answers and records them, so the
    worker takes its next job during that round trip instead of idling (two workers finishing
    equal jobs together left the sender's rate unused for a round trip). Those messages are
    ``sending`` meanwhile: a pause waits for them, and were the process to die, the sweeper
    settles them as after any crash. The counts returned leave the detached tail out.
    """
    if job_id is not None:
        with runtime.queue.running(job_id):
            return deliver_batch(runtime, message_ids, detach_tail=detach_tail)
    by_clinic: dict[uuid.UUID, list[uuid.UUID]] = {}
    wanted = [uuid.UUID(i) for i in message_ids]
    clinics = clinics_of(runtime.engine, Message, wanted)
    for message_id in wanted:
        if message_id in clinics:
            by_clinic.setdefault(clinics[message_id], []).append(message_id)
    outcomes: Counter[str] = Counter(skipped=len(wanted) - len(clinics))
    for clinic, ids in by_clinic.items():
        outcomes.update(_deliver_in_clinic(runtime, clinic, ids, detach_tail=detach_tail))
    return {k: v for k, v in outcomes.items() if v}


class _Outcomes:
    """The answers of one clinic's sends, recorded a group at a time (accepted ones) or one by one."""

    def __init__(self, runtime: Runtime, clinic: uuid.UUID, concurrency: int) -> None:
        self.runtime, self.clinic, self.concurrency = runtime, clinic, concurrency
        self.counts: Counter[str] = Counter()
        self.accepted: list[tuple[Loaded, Accepted, Provider]] = []
        self.oldest_unrecorded = 0.0

    def settle(self, done: Iterable[Future[Any]], in_flight: dict[Future[Any], Loaded]) -> None:
        for future in done:
            item = in_flight.pop(future)
            result, provider = future.result()
            if isinstance(result, Accepted):
                if not self.accepted:
                    self.oldest_unrecorded = time.monotonic()
                self.accepted.append((item, result, provider))
            elif isinstance(result, ClaimExpired):
                self.counts["claim_expired"] += 1
            elif isinstance(result, ProviderError):
                outcome = record_failure(self.runtime, item.message, result, attempt=item.message.attempts + 1)
                self.counts[outcome] += 1
                if outcome == "failed" and may_fall_back(item.message.channel, item.template, result.code):
                    self.counts["fallback"] += fall_back_to_sms(self.runtime, item.message.id, result.code,
                                                                clinic=self.clinic) is not None
            else:
                self.counts["error"] += 1

    def record(self, *, now: bool) -> None:
        """Record the accepted sends when a group is full, it is time, or ``now``."""
        if self.accepted and (now or len(self.accepted) >= self.concurrency
                              or time.monotonic() - self.oldest_unrecorded > RECORD_EVERY_SECONDS):
            record_accepted(self.runtime, self.accepted)
            self.counts["sent"] += len(self.accepted)
            self.accepted = []


def _finish(pool: ThreadPoolExecutor, in_flight: dict[Future[Any], Loaded], outcomes: _Outcomes) -> None:
    """Wait for the requests still in flight and record their answers; then the pool ends."""
    try:
        while in_flight:
            done, _ = wait(in_flight, timeout=RECORD_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            outcomes.settle(done, in_flight)
            outcomes.record(now=not in_flight)
        outcomes.record(now=True)
    except Exception:  # the sweeper settles what was not recorded, as after a crash
        log.exception("recording the last answers of a delivery batch failed")
    finally:
        pool.shutdown(wait=True)


def _deliver_in_clinic(runtime: Runtime, clinic: uuid.UUID, message_ids: list[uuid.UUID], *,
                       detach_tail: bool = False) -> Counter[str]:
    """``deliver_batch`` for the messages of one clinic, every read and write inside that clinic."""
    ids = deque(message_ids)
    pending: deque[tuple[Loaded, Route]] = deque()
    resolver = RouteResolver(runtime)
    concurrency = max(1, min(runtime.settings.delivery_concurrency, len(ids)))
    outcomes = _Outcomes(runtime, clinic, concurrency)
    # Claimed but not yet started requests: enough that a sender never waits for the database, few
    # enough that a pause or cancel waits only for the requests already starting (each claimed
    # message is sent even if its job is paused a moment later).
    claim_ahead = max(2, concurrency // 4)

    def read_more() -> None:
        """Read the next few messages (small reads keep the senders' threads from stalling)."""
        chunk = [ids.popleft() for _ in range(min(LOAD_CHUNK, len(ids)))]
        loaded = load(runtime, clinic, chunk)
        outcomes.counts["skipped"] += len(chunk) - len(loaded)
        for item in loaded.values():
            verdict = _decide(runtime, item, resolver)
            if isinstance(verdict, str):
                outcomes.counts[verdict] += 1
            else:
                pending.append((item, verdict))

    claimed: deque[tuple[Loaded, Route, dt.datetime]] = deque()  # with the latest time its request may start
    in_flight: dict[Future[tuple[Accepted | ProviderError | ClaimExpired | None, Provider]], Loaded] = {}
    lease = claim_lease(runtime.settings)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")
    try:
        while ids or pending or claimed:
            while ids and len(pending) < concurrency:
                read_more()
            room = concurrency + claim_ahead - len(claimed) - len(in_flight)
            if room > 0 and pending:  # claim a little ahead of the senders, one statement per group
                group = [pending.popleft() for _ in range(min(room, len(pending)))]
                start_by = runtime.clock() + lease  # taken before the claim's own time: on the safe side
                won = _claim(runtime, group)
                outcomes.counts["skipped"] += len(group) - len(won)
                claimed.extend((item, route, start_by) for item, route in won)
            while claimed and len(in_flight) < concurrency:
                item, route, start_by = claimed.popleft()
                in_flight[pool.submit(_send, runtime, item, route, start_by)] = item
            if not in_flight:
                continue
            done, _ = wait(in_flight, timeout=RECORD_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            outcomes.settle(done, in_flight)
            outcomes.record(now=not in_flight)
    except BaseException:
        _finish(pool, in_flight, outcomes)
        raise
    if detach_tail and in_flight:  # every message handed to a sender: the answers are awaited aside
        counts = Counter(outcomes.counts)
        threading.Thread(target=_finish, args=(pool, in_flight, outcomes), name="send-tail").start()
        return counts
    _finish(pool, in_flight, outcomes)
    return outcomes.counts


def _decide(runtime: Runtime, item: Loaded, resolver: RouteResolver) -> Route | str:
    """The providers to try in order, or why not now ('paused', 'not_due', 'suppressed', ...)."""
    message, tenant = item.message, item.tenant
    now = runtime.clock()
    if tenant.sending_paused:
        with tenant_session(runtime.engine, tenant.id) as session:  # wait; resume re-enqueues
            session.execute(update(Message).where(Message.id == message.id, Message.status == MessageStatus.QUEUED)
                            .values(enqueued_at=None, delivery_job_id=None)
                            .execution_options(synchronize_session=False))
        return "paused"
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return "not_due"
    decision = decide(
        channel=Channel(message.channel), patient=item.patient, preference=item.preference, urgent=message.urgent,
        message_class=MessageClass(message.message_class), timezone=tenant.timezone, now=now,
        promotional_window=tenant.promotional_window,
    )
    queued = (MessageStatus.QUEUED, message.tenant_id)
    if decision.defer_until is not None:
        with tenant_session(runtime.engine, tenant.id) as session:
            moved = transition(session, message.id, MessageStatus.SCHEDULED, event="deferred",
                               detail=decision.defer_reason or "", only_from={MessageStatus.QUEUED},
                               values={"scheduled_at": decision.defer_until, "status_reason": decision.defer_reason
                                       or "", "enqueued_at": None, "delivery_job_id": None}, expected=queued)
        return "deferred" if moved else "skipped"
    if not decision.send:
        with tenant_session(runtime.engine, tenant.id) as session:
            moved = transition(session, message.id, MessageStatus.SUPPRESSED, event="suppressed",
                               detail=decision.suppress_reason or "", only_from={MessageStatus.QUEUED},
                               values={"status_reason": decision.suppress_reason or ""}, expected=queued)
        return "suppressed" if moved else "skipped"
    try:
        return resolver.route(tenant, Channel(message.channel), message.recipient)
    except PermanentFailure as exc:
        with tenant_session(runtime.engine, tenant.id) as session:
            transition(session, message.id, MessageStatus.FAILED, event="rejected", detail=str(exc),
                       error_code=exc.code, values={"status_reason": str(exc)}, only_from={MessageStatus.QUEUED},
                       expected=queued)
        return "failed"


(_CLAIMED_FROM,) = sources_of(MessageStatus.SENDING)  # the lifecycle table: only a queued message is claimed
# What a message is sent as, read back by the claim itself (a waiting message's contact or text may be corrected)
_SENT_AS_CLAIMED = ("recipient", "body", "subject", "language", "variables", "segments")


def _claim(runtime: Runtime, group: list[tuple[Loaded, Route]]) -> list[tuple[Loaded, Route]]:
    """Move the group from queued to sending in one statement; the ones this worker won, with what the
    row says at the claim: a correction that committed after ``load`` read the message (a new number or
    address, a text rendered again in a new language) is what gets sent, never the older copy."""
    if not group:
        return []
    now = runtime.clock()
    by_id = {item.message.id: (item, route) for item, route in group}
    clinic = _one_clinic(item.message for item, _ in group)
    with scoped_connection(runtime.engine, clinic) as connection:
        lock_jobs_of(connection, list(by_id))
        claimed = connection.execute(
            update(Message)
            .where(Message.tenant_id == clinic, Message.id.in_(list(by_id)),
                   may_move_to(Message.status, MessageStatus.SENDING, (_CLAIMED_FROM,)), not_held())
            .values(status=MessageStatus.SENDING, claimed_at=now, attempts=Message.attempts + 1, updated_at=now)
            .returning(Message.id, *(getattr(Message, name) for name in _SENT_AS_CLAIMED))
        ).all()
        for row in claimed:
            message = by_id[row.id][0].message
            for name in _SENT_AS_CLAIMED:
                setattr(message, name, getattr(row, name))
        won = {row.id for row in claimed}
        if won:
            connection.execute(insert(MessageLog.__table__), [
                {"id": uuid.uuid4(), "message_id": mid, "tenant_id": by_id[mid][0].message.tenant_id,
                 "event": "sending", "from_status": _CLAIMED_FROM, "to_status": MessageStatus.SENDING,
                 "provider": by_id[mid][1][0].name, "detail": f"attempt {by_id[mid][0].message.attempts + 1}",
                 "created_at": now}
                for mid in won
            ])
    return [pair for mid, pair in by_id.items() if mid in won]


def _one_clinic(messages: Iterable[Message]) -> uuid.UUID:
    clinics = {message.tenant_id for message in messages}
    if len(clinics) != 1:
        raise ValueError("a group of messages written together must belong to one clinic")
    return clinics.pop()


def _send(runtime: Runtime, item: Loaded, route: Route,
          start_by: dt.datetime | None = None) -> tuple[Accepted | ProviderError | ClaimExpired | None, Provider]:
    """Try the route's providers in order until one answers other than "not processed, fail over";
    each waits for its sender's rate slot just before its request, which starts only until
    ``start_by`` (the claim's lease). None on an unexpected bug."""
    message = item.message
    provider = route[0]
    try:
        outgoing = build_outgoing(runtime, message, item.template,
                                  item.tenant.email_sender_name or item.tenant.name, item.patient)
        for index, provider in enumerate(route):
            if warm_up := getattr(provider, "warm_up", None):
                warm_up()  # e.g. build this thread's HTTP client now, not after the slot opened
            runtime.limiter.wait_for_slot(f"{provider.name}:{message.channel}",
                                          runtime.settings.rate_for(message.channel))
            if start_by is not None and runtime.clock() > start_by:
                log.warning("message %s: its claim expired before the request; left to the sweeper", message.id)
                return ClaimExpired(), provider
            try:
                return provider.send(outgoing), provider
            except NotProcessed as exc:
                if index + 1 == len(route) or not exc.allows_failover:
                    raise
                _record_failover(runtime, message, exc, provider, route[index + 1])
    except ProviderError as exc:
        return exc, provider
    except Exception:  # a bug must not stop the batch; the sweeper settles the message by lookup
        log.exception("sending message %s failed unexpectedly", message.id)
    return None, provider


def _record_failover(runtime: Runtime, message: Message, exc: NotProcessed, refused: Provider,
                     following: Provider) -> None:
    """One timeline event per provider that did not take the message (it stays in ``sending``)."""
    with scoped_connection(runtime.engine, message.tenant_id) as connection:
        log_event(connection, message.id, message.tenant_id, "failover", provider=refused.name,
                  error_code=exc.code, at=runtime.clock(),
                  detail=f"{refused.name} did not take the message ({exc}); trying {following.name}")


WHATSAPP_SESSION = dt.timedelta(hours=24)


def inside_whatsapp_session(patient: Patient | None, now: dt.datetime) -> bool:
    """True while the patient's last WhatsApp message to us is under 24 hours old (free text allowed)."""
    last = patient.whatsapp_last_inbound_at if patient is not None else None
    return last is not None and now - last < WHATSAPP_SESSION


def build_outgoing(runtime: Runtime, message: Message, template: MessageTemplate | None,
                   clinic_name: str = "", patient: Patient | None = None) -> OutgoingMessage:
    """What the provider gets for a message row (also used to look a message up later).

    A WhatsApp message whose template is linked to an approved Content template goes out as
    ``ContentSid`` + ``ContentVariables`` unless the patient wrote to us in the last 24 hours
    (then the rendered body, which WhatsApp allows inside the session).
    """
    whatsapp_template = (
        template is not None and message.channel == Channel.WHATSAPP and bool(template.whatsapp_content_sid)
        and not inside_whatsapp_session(patient, runtime.clock())
    )
    return OutgoingMessage(
        message_id=message.id, tenant_id=message.tenant_id, channel=Channel(message.channel),
        recipient=message.recipient, body=message.body, language=Language(message.language),
        subject=message.subject, status_callback_url=status_callback_url(runtime, message.id),
        content_sid=template.whatsapp_content_sid if whatsapp_template and template else None,
        content_variables=_content_variables(template, message.variables) if whatsapp_template and template else None,
        sender_name=clinic_name, message_class=MessageClass(message.message_class),
    )


def _content_variables(template: MessageTemplate, variables: dict) -> dict[str, str] | None:
    mapping = template.whatsapp_variable_map or {}
    if not template.whatsapp_content_sid:
        return None
    return {str(slot): str(variables.get(name, "")) for slot, name in mapping.items()}


def record_accepted(runtime: Runtime, accepted: list[tuple[Loaded, Accepted, Provider]]) -> None:
    """Record a group of provider acceptances (sending -> sent) in one transaction.

    A status callback may have moved a message on already (it can arrive before we record):
    then its status stands and only the missing provider id, price and segments are filled in.
    """
    if not accepted:
        return
    now = runtime.clock()
    rows = [{
        "mid": item.message.id, "sid": result.provider_message_id, "price": result.price,
        "price_unit": result.price_unit, "sender": result.sender,
        "segments": result.segments if result.segments is not None else item.message.segments,
        "tenant": item.message.tenant_id, "provider": provider.name, "now": now,
        "detail": f"accepted as {result.provider_message_id}", "log_id": uuid.uuid4(),
    } for item, result, provider in accepted]
    table, logs = Message.__table__, MessageLog.__table__
    clinic = _one_clinic(item.message for item, _, _ in accepted)
    with scoped_connection(runtime.engine, clinic, durable=False) as connection:
        connection.execute(
            update(table).where(table.c.tenant_id == clinic, table.c.id == bindparam("mid"),
                                table.c.status == MessageStatus.SENDING)
            .values(status=MessageStatus.SENT, provider_message_id=bindparam("sid"), price=bindparam("price"),
                    price_unit=bindparam("price_unit"), sender=bindparam("sender"), provider=bindparam("provider"),
                    segments=bindparam("segments"), sent_at=bindparam("now"), updated_at=bindparam("now"),
                    status_reason=""),
            rows,
        )
        moved = select(
            bindparam("log_id", type_=logs.c.id.type), table.c.id, table.c.tenant_id, literal("accepted"),
            literal(MessageStatus.SENDING.value), literal(MessageStatus.SENT.value), bindparam("provider"),
            bindparam("detail"), bindparam("now", type_=logs.c.created_at.type),
        ).where(table.c.tenant_id == clinic, table.c.id == bindparam("mid"),
                table.c.provider_message_id == bindparam("sid"),
                table.c.status == MessageStatus.SENT, table.c.sent_at == bindparam("now"))
        connection.execute(
            insert(logs).from_select(
                ["id", "message_id", "tenant_id", "event", "from_status", "to_status", "provider", "detail",
                 "created_at"], moved),
            rows,
        )
        connection.execute(  # a callback got there first: keep its status, fill in what it lacked
            update(table).where(table.c.tenant_id == clinic, table.c.id == bindparam("mid"),
                                table.c.provider_message_id.is_(None))
            .values(provider_message_id=bindparam("sid"), price=bindparam("price"),
                    price_unit=bindparam("price_unit"), sender=bindparam("sender"), segments=bindparam("segments")),
            rows,
        )
    for item, result, _provider in accepted:
        for delay, status, code in result.playback:
            runtime.queue.enqueue("worker.jobs.apply_provider_status", result.provider_message_id,
                                  str(item.message.id), status.value, code, delay_seconds=delay)


def record_failure(runtime: Runtime, message: Message, exc: ProviderError, *, attempt: int) -> str:
    code = exc.code
    info = explain(code)
    reason = info.title if info else str(exc)
    now = runtime.clock()
    sending = (MessageStatus.SENDING, message.tenant_id)
    with tenant_session(runtime.engine, message.tenant_id) as session:
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
        if isinstance(exc, NotProcessed) and exc.configuration:  # no (more) provider to fail over to
            transition(session, message.id, MessageStatus.FAILED, event="rejected", provider=exc.provider,
                       error_code=code, detail=str(exc), values={"status_reason": reason},
                       only_from={MessageStatus.SENDING}, expected=sending)
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
