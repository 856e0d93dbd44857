"""Sending messages: one, retry, cancel, schedule, the clinic's emergency stop; and the bulk adapter.

Every use case here is ``fn(session, actor, ...) -> plain data`` like the rest of the service
layer: ``session`` is a unit of work in the actor's clinic (``db.session.tenant_session``), the
actor's role is always checked, and the delivery jobs are put on the queue only after the
session commits (``app.services.queueing``). A page calls them as
``session.call(messaging.send, channel, ...)``; an integration passes a named actor
(``Actor.system(tenant_id, name="...")``), never none.

Scripts (and the seed) have one more door, ``MessagingService().send_bulk_messages(...)``: a thin
adapter over the bulk wizard's own path (``bulk.wizard.confirm`` with a custom list, then the
expansion ``bulk.expansion.expand``), so a bulk send follows the same language, opt-out,
consent and suppression rules however it is started:

```python
from app.services.messaging import MessagingService
service = MessagingService()                      # the process's runtime: its database and queue
result = service.send_bulk_messages(
    recipients=['+966501234567', '+966507654321'],
    message='Your appointment is tomorrow',
    channel='SMS',
    tenant_id=tenant_id,
)
result.bulk_job_id, result.accepted, result.rejected
```
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import pricing
from app.delivery.dispatch import assign_jobs
from app.delivery.lifecycle import transition
from app.delivery.queue import JobQueue
from app.errors import ConflictError, NotFoundError, ValidationError
from app.phones import InvalidPhoneNumber, normalise_phone
from app.services import audit, tenants
from app.services.message_content import STANDARD_VARIABLES, choose_language, patient_variables, render_body
from app.services.permissions import Actor, Permission, authorize
from app.services.queueing import deliver_after_commit, use_queue
from db.enums import BULK_JOB_MOVING, BulkJobStatus, Channel, Language, MessageClass, MessageStatus, move_bulk_job
from db.enums import (  # what staff may retry or cancel: next to the lifecycle table
    CANCELLABLE as CANCELLABLE,
)
from db.enums import RETRYABLE as RETRYABLE
from db.models import (
    BulkJob,
    Message,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    Tenant,
)
from db.session import tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

if TYPE_CHECKING:
    from app.delivery.runtime import Runtime

log = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_RAW_RECIPIENTS = 100_000
SCRIPT_ACTOR = "api"  # the name a script's bulk send is audited under when it names no actor


@dataclass(frozen=True)
class RejectedRecipient:
    recipient: str
    reason: str
    row: int  # 1-based position in the list given


@dataclass(frozen=True)
class BulkSendResult:
    bulk_job_id: uuid.UUID
    accepted: int
    rejected: list[RejectedRecipient] = field(default_factory=list)
    duplicate_request: bool = False


@dataclass(frozen=True)
class SendResult:
    message_id: uuid.UUID
    status: MessageStatus
    recipient: str
    language: Language
    body: str
    note: str = ""


def normalise_recipient(raw: str, channel: Channel, region: str) -> str:
    """E.164 for SMS/WhatsApp, a lower-cased address for email; raises ValidationError with the reason."""
    text = (raw or "").strip()
    if channel == Channel.EMAIL:
        if not EMAIL_PATTERN.match(text):
            raise ValidationError("not a valid e-mail address", field="recipient")
        return text.lower()
    try:
        return normalise_phone(text, region)
    except InvalidPhoneNumber as exc:
        raise ValidationError(str(exc), field="recipient") from None


def _parse_time(value: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValidationError("Give the scheduled time with a time zone.", field="scheduled_at")
    if value <= now:
        raise ValidationError("The scheduled time is in the past.", field="scheduled_at")
    return value.astimezone(dt.UTC)


def _stored_variables(template: MessageTemplate | None, values: dict[str, Any],
                      given: dict[str, Any] | None) -> dict[str, str]:
    """The caller's variables, plus the values a WhatsApp Content template's numbered variables need."""
    stored = {k: str(v) for k, v in (given or {}).items()}
    for name in (template.whatsapp_variable_map or {}).values() if template is not None else ():
        stored.setdefault(name, str(values.get(name, "")))
    return stored




def _template(session: TenantSession, code: str, channel: Channel) -> tuple[MessageTemplate, MessageTemplateVersion]:
    template = session.scalar(select(MessageTemplate).where(
        MessageTemplate.code == code, MessageTemplate.deleted_at.is_(None)))
    if template is None:
        raise NotFoundError(f"No template has the code '{code}'.")
    if not template.is_active:
        raise ValidationError(f"The template '{code}' is not active.", field="template_code")
    if Channel(template.channel) != channel:
        raise ValidationError(f"The template '{code}' is for {Channel(template.channel).label}, "
                              f"not {channel.label}.", field="template_code")
    version = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id,
        MessageTemplateVersion.version == template.current_version))
    if version is None:
        raise NotFoundError(f"The template '{code}' has no saved version.")
    return template, version


def _channel(value: str | Channel) -> Channel:
    try:
        return Channel.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc), field="channel") from None


# -- one message -------------------------------------------------------------------------------


def send(
    session: TenantSession,
    actor: Actor,
    channel: str | Channel,
    *,
    patient_id: uuid.UUID | None = None,
    recipient: str | None = None,
    template_code: str | None = None,
    variables: dict[str, Any] | None = None,
    text: str | None = None,
    text_ar: str | None = None,
    subject: str = "",
    language: Language | str | None = None,
    urgent: bool = False,
    scheduled_at: dt.datetime | None = None,
    is_test: bool = False,
    idempotency_key: str | None = None,
    message_class: MessageClass | str = MessageClass.SERVICE,
) -> SendResult:
    """Send to a patient (their contact for the channel) or a raw recipient, by template or text.

    The row is written in ``session``; its delivery job is enqueued after the commit. The same
    ``idempotency_key`` twice returns the first message. ``message_class`` is a text's class (a
    template's own class applies to a template).
    """
    channel = _channel(channel)
    if (template_code is None) == (text is None):
        raise ValidationError("Give either a template code or a text.", field="template_code")
    now = utcnow()
    send_at = _parse_time(scheduled_at, now)
    requested = Language(language) if language else None
    authorize(session, actor, Permission.SEND_MESSAGES)
    tenant = tenants.current(session, active=True)
    if idempotency_key:
        existing = session.scalar(select(Message).where(Message.idempotency_key == idempotency_key))
        if existing is not None:
            return _send_result(existing, note="already submitted")
    patient = None
    if patient_id is not None:
        patient = session.scalar(select(Patient).where(Patient.id == patient_id, Patient.deleted_at.is_(None)))
        if patient is None:
            raise NotFoundError("That patient does not exist in your clinic.")
    address = recipient or (patient.email if patient and channel == Channel.EMAIL else
                            patient.phone_e164 if patient else None)
    if not address:
        raise ValidationError(f"The patient has no contact for {channel.label}.", field="recipient")
    address = normalise_recipient(address, channel, tenant.default_region)
    if patient is None and not is_test:
        column = Patient.email if channel == Channel.EMAIL else Patient.phone_e164
        patient = session.scalar(select(Patient).where(column == address, Patient.deleted_at.is_(None)).limit(1))
    preference = session.scalar(select(NotificationPreference).where(
        NotificationPreference.patient_id == patient.id)) if patient else None
    template = version = None
    message_class = MessageClass(message_class)
    if template_code is not None:
        template, version = _template(session, template_code, channel)
        message_class = MessageClass(template.message_class)
        body_en, body_ar = version.body_en, version.body_ar
        subject_en, subject_ar = version.subject_en, version.subject_ar
    else:
        body_en, body_ar, subject_en, subject_ar = text or "", text_ar or "", subject, subject
    choice = choose_language(preference=preference, patient=patient, tenant=tenant,
                             has_arabic_body=bool(body_ar.strip()), requested=requested)
    values = {**patient_variables(session, tenant, patient, choice.language, now=now), **(variables or {})}
    source = body_ar if choice.language == Language.AR else body_en
    body = render_body(source, values, channel)
    subject_source = subject_ar if choice.language == Language.AR and subject_ar else subject_en
    subject_text = render_body(subject_source, values, Channel.EMAIL) if (
        channel == Channel.EMAIL and subject_source.strip()) else (subject_source or tenant.name)
    row = Message(
        tenant_id=tenant.id, patient_id=patient.id if patient else None,
        template_id=template.id if template else None, template_version_id=version.id if version else None,
        created_by_id=actor.user_id, channel=channel, message_class=message_class,
        recipient=address, language=choice.language, subject=subject_text if channel == Channel.EMAIL else "",
        body=body, variables=_stored_variables(template, values, variables),
        status=MessageStatus.SCHEDULED if send_at else MessageStatus.QUEUED, urgent=urgent, is_test=is_test,
        segments=pricing.segments(channel, body),
        scheduled_at=send_at, queued_at=None if send_at else now, idempotency_key=idempotency_key,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("This message was already submitted.") from None
    if not send_at:
        deliver_after_commit(session, assign_jobs(session, [row.id], now))
    audit.record(session, actor, "message.send_test" if is_test else "message.send", object_type="message",
                 object_id=row.id, details={"channel": channel.value, "template": template_code,
                                            "scheduled_at": send_at.isoformat() if send_at else None})
    note = "The Arabic text is empty, so the English text was used." if choice.fell_back_to_english else ""
    return _send_result(row, note=note)


def rendered_again(session: TenantSession, tenant: Tenant, message: Message, patient: Patient,
                   preference: NotificationPreference | None, *, now: dt.datetime | None = None
                   ) -> dict[str, Any] | None:
    """The new language, text, subject, variables and segments of a waiting template message when
    the patient's language (after staff changed it) calls for the other one, rendered as ``send``
    renders; None when nothing changes: not from a template, the template has no text in that
    language, or the text cannot be rendered in it (e.g. a value is missing)."""
    if message.template_version_id is None:
        return None
    version = session.get(MessageTemplateVersion, message.template_version_id)
    template = session.get(MessageTemplate, message.template_id) if message.template_id else None
    if version is None:
        return None
    choice = choose_language(preference=preference, patient=patient, tenant=tenant,
                             has_arabic_body=bool(version.body_ar.strip()))
    if choice.language == Language(message.language) or choice.fell_back_to_english:
        return None
    arabic = choice.language == Language.AR
    given = {k: v for k, v in (message.variables or {}).items() if k not in STANDARD_VARIABLES}
    values = {**patient_variables(session, tenant, patient, choice.language, now=now), **given}
    channel = Channel(message.channel)
    subject_source = version.subject_ar if arabic and version.subject_ar else version.subject_en
    try:
        body = render_body(version.body_ar if arabic else version.body_en, values, channel)
        subject = render_body(subject_source, values, Channel.EMAIL) if subject_source.strip() else tenant.name
    except ValidationError:
        return None
    return {"language": choice.language, "body": body, "subject": subject if channel == Channel.EMAIL else "",
            "variables": _stored_variables(template, values, given), "segments": pricing.segments(channel, body)}


def schedule(session: TenantSession, actor: Actor, channel: str | Channel, send_at: dt.datetime,
             **kwargs: Any) -> SendResult:
    """``send`` at a future time (the message waits in ``scheduled`` and can be cancelled)."""
    return send(session, actor, channel, scheduled_at=send_at, **kwargs)


# -- retry / cancel ----------------------------------------------------------------------------


def retry(session: TenantSession, actor: Actor, message_ids: Sequence[uuid.UUID]) -> list[SendResult]:
    """A new attempt for each failed, undelivered or unknown message: a new row linked to the original.

    Each original can be retried once (retry the newest one in a chain); asking twice returns
    the same new message, so a double click never sends twice. Opt-outs still apply.
    """
    authorize(session, actor, Permission.RETRY_MESSAGES)
    results: list[SendResult] = []
    new_ids: list[uuid.UUID] = []
    now = utcnow()
    originals = list(session.scalars(select(Message).where(Message.id.in_(list(message_ids)))))
    found = {m.id for m in originals}
    missing = [str(i) for i in message_ids if i not in found]
    if missing:
        raise NotFoundError(f"{len(missing)} of the messages do not exist in your clinic.")
    for original in originals:
        if MessageStatus(original.status) not in RETRYABLE:
            raise ValidationError(
                f"Only failed, undelivered or unknown messages can be retried "
                f"(this one is {MessageStatus(original.status).value}).")
    for original in originals:
        key = f"retry:{original.id}"
        existing = session.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is not None:
            results.append(_send_result(existing, note="already retried"))
            continue
        row = Message(
            tenant_id=original.tenant_id, patient_id=original.patient_id, bulk_job_id=original.bulk_job_id,
            template_id=original.template_id, template_version_id=original.template_version_id,
            retry_of_id=original.id, created_by_id=actor.user_id,
            channel=original.channel, message_class=original.message_class, recipient=original.recipient,
            language=original.language, subject=original.subject, body=original.body,
            variables=original.variables, status=MessageStatus.QUEUED, urgent=original.urgent,
            is_test=original.is_test, segments=original.segments, idempotency_key=key, queued_at=now,
        )
        session.add(row)
        session.flush()
        new_ids.append(row.id)
        results.append(_send_result(row))
        audit.record(session, actor, "message.retry", object_type="message", object_id=original.id,
                     details={"new_message_id": str(row.id)})
    deliver_after_commit(session, assign_jobs(session, new_ids, now))
    return results


def cancel(session: TenantSession, actor: Actor, *, message_ids: Sequence[uuid.UUID] | None = None,
           bulk_job_id: uuid.UUID | None = None) -> int:
    """Cancel messages that have not started sending (scheduled or queued); return how many."""
    if not message_ids and bulk_job_id is None:
        raise ValidationError("Say which messages or which bulk job to cancel.")
    authorize(session, actor, Permission.RETRY_MESSAGES if bulk_job_id is None else Permission.BULK_SEND)
    cancelled = 0
    query = select(Message.id).where(Message.status.in_(CANCELLABLE))
    if bulk_job_id is not None:
        job = session.get(BulkJob, bulk_job_id)
        if job is None:
            raise NotFoundError("That bulk job does not exist in your clinic.")
        query = query.where(Message.bulk_job_id == bulk_job_id)
    else:
        query = query.where(Message.id.in_(list(message_ids or [])))
    for message_id in session.scalars(query).all():
        if transition(session, message_id, MessageStatus.CANCELLED, event="cancelled",
                      detail=f"cancelled by {actor.username}",
                      only_from=set(CANCELLABLE), values={"status_reason": "Cancelled by staff."}):
            cancelled += 1
    if bulk_job_id is not None and BulkJobStatus(job.status) in BULK_JOB_MOVING:
        move_bulk_job(job, BulkJobStatus.CANCELLED)
        job.completed_at = utcnow()
    audit.record(session, actor, "message.cancel", object_type="bulk_job" if bulk_job_id else "message",
                 object_id=bulk_job_id or (message_ids[0] if message_ids and len(message_ids) == 1 else None),
                 details={"cancelled": cancelled, "requested": len(message_ids or [])})
    return cancelled


# -- emergency stop ----------------------------------------------------------------------------


def pause_sending(session: TenantSession, actor: Actor, *, reason: str = "") -> bool:
    """Stop all sending for the clinic now. Waiting messages stay waiting; nothing is lost."""
    authorize(session, actor, Permission.PAUSE_SENDING)
    tenant = tenants.current(session, active=True)
    tenant.sending_paused = True
    audit.record(session, actor, "sending.pause", object_type="tenant", object_id=tenant.id,
                 details={"reason": reason[:500]})
    return True


def resume_sending(session: TenantSession, actor: Actor) -> int:
    """Resume sending; every waiting message is enqueued again (after the commit). Returns how many."""
    authorize(session, actor, Permission.PAUSE_SENDING)
    now = utcnow()
    tenant = tenants.current(session, active=True)
    tenant.sending_paused = False
    ids = list(session.scalars(select(Message.id).where(Message.status == MessageStatus.QUEUED)))
    deliver_after_commit(session, assign_jobs(session, ids, now))
    audit.record(session, actor, "sending.resume", object_type="tenant", object_id=tenant.id,
                 details={"waiting": len(ids)})
    return len(ids)


def is_paused(session: TenantSession, actor: Actor) -> bool:
    """Whether the clinic's sending is paused (everyone who sees the dashboard may know)."""
    authorize(session, actor, Permission.VIEW_DASHBOARD)
    return bool(session.scalar(select(Tenant.sending_paused).where(Tenant.id == session.tenant_id)))


# -- the adapter for scripts -------------------------------------------------------------------


class _ExpansionRequests:
    """The queue a script's bulk send confirms on: it keeps the expansion job the wizard's ``confirm``
    asks for after its commit, so ``send_bulk_messages`` runs that job itself and returns final counts."""

    def __init__(self) -> None:
        self.bulk_job_ids: list[uuid.UUID] = []

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        from app.services.bulk.expansion import EXPAND_JOB

        if func != EXPAND_JOB:
            raise RuntimeError(f"a bulk confirm enqueued {func}, not the expansion")
        self.bulk_job_ids.append(uuid.UUID(str(args[0])))


class MessagingService:
    """The Python API for scripts and the seed: one bulk send, started like the wizard's.

    A thin adapter, kept for callers outside the app: everything else is a ``fn(session, actor,
    ...)`` function of this module. ``runtime`` defaults to the process's
    (``app.delivery.runtime.get_runtime()``): its database and its job queue.
    """

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from app.delivery.runtime import get_runtime

            self._runtime = get_runtime()
        return self._runtime

    def send_bulk_messages(
        self,
        recipients: Iterable[str],
        message: str,
        channel: str | Channel,
        tenant_id: uuid.UUID,
        *,
        message_ar: str = "",
        actor: Actor | None = None,
        scheduled_at: dt.datetime | None = None,
        idempotency_key: str | None = None,
        name: str = "",
        message_class: MessageClass = MessageClass.SERVICE,
        template_code: str | None = None,
    ) -> BulkSendResult:
        """Send one text (English, optionally Arabic) to a list of phone numbers or e-mail addresses.

        The wizard's path with a custom list: the list is read as an upload is
        (``bulk.recipients.to_recipients``: E.164 with the clinic's region; invalid ones and
        duplicates refused with their position and reason), the job is confirmed
        (``bulk.wizard.confirm``) and expanded (``bulk.expansion.expand``, the worker's job, run
        here so the counts are final on return). A known recipient gets the patient's language
        and name; opt-outs and missing consent are written as ``suppressed``; a text that cannot
        be rendered for someone refuses that recipient. The same ``idempotency_key`` twice creates
        one job. ``actor`` defaults to ``Actor.system(tenant_id, name="api")`` (an admin).

        With ``template_code`` the template's current version is the text (``message`` and
        ``message_ar`` are ignored) and its class applies; a WhatsApp template must be approved
        by WhatsApp, else nothing is created.
        """
        # The wizard's modules import this one (``normalise_recipient``): imported when used.
        from app.services.bulk import expansion, wizard
        from app.services.bulk import recipients as ri

        channel = _channel(channel)
        send_at = _parse_time(scheduled_at, utcnow())
        raw = [str(value) for value in recipients]
        if not raw:
            raise ValidationError("Give at least one recipient.", field="recipients")
        if len(raw) > MAX_RAW_RECIPIENTS:
            raise ValidationError(f"At most {MAX_RAW_RECIPIENTS:,} recipients per call.", field="recipients")
        if template_code is None and not (message or "").strip():
            raise ValidationError("The message is empty.", field="message")
        actor = actor or Actor.system(tenant_id, name=SCRIPT_ACTOR)
        runtime = self.runtime
        requests = _ExpansionRequests()
        with tenant_session(runtime.engine, tenant_id) as session:
            use_queue(session, cast(JobQueue, requests))
            authorize(session, actor, Permission.BULK_SEND)
            tenant = tenants.current(session, active=True)
            template_id = None
            if template_code is not None:
                template_id = _template(session, template_code, channel)[0].id
            if idempotency_key:
                existing = session.scalar(select(BulkJob).where(BulkJob.idempotency_key == idempotency_key))
                if existing is not None:
                    return _bulk_result(existing, duplicate=True)
            imported = ri.to_recipients(ri.Table(["recipient"], [(row, [value]) for row, value in enumerate(raw, 1)]),
                                        ri.ColumnMapping(contact="recipient"), channel, tenant.default_region)
            if not imported.recipients:
                raise _nobody([RejectedRecipient(r.recipient, r.reason, r.row) for r in imported.rejected])
            draft = wizard.Draft(
                idempotency_key=idempotency_key or wizard.new_draft_key(),
                audience={"kind": "list", "recipients": imported.recipients}, channel=channel,
                template_id=template_id, body_en="" if template_id else message,
                body_ar="" if template_id else message_ar, message_class=message_class, name=name,
                import_rejections=tuple(imported.rejected))
            created = wizard.confirm(session, actor, draft, count_confirmed_by_caller=True,
                                          send_at_local=send_at)
        for bulk_job_id in requests.bulk_job_ids:
            expansion.expand(runtime, bulk_job_id)
        with tenant_session(runtime.engine, tenant_id) as session:
            job = session.get(BulkJob, created.bulk_job_id)
            assert job is not None
            result = _bulk_result(job, duplicate=created.duplicate)
            failed = BulkJobStatus(job.status) == BulkJobStatus.FAILED
        if failed or result.accepted == 0:
            raise _nobody(result.rejected)
        return result


def _nobody(rejected: list[RejectedRecipient]) -> ValidationError:
    return ValidationError("No recipient can be sent to: " + "; ".join(
        f"row {r.row}: {r.reason}" if r.row else r.reason for r in rejected[:5]), field="recipients")


def _bulk_result(job: BulkJob, *, duplicate: bool = False) -> BulkSendResult:
    rejected = sorted((RejectedRecipient(r["recipient"], r["reason"], r["row"]) for r in (job.rejections or [])),
                      key=lambda r: (r.row is None, r.row or 0))
    return BulkSendResult(bulk_job_id=job.id, accepted=job.accepted_count, rejected=rejected,
                          duplicate_request=duplicate)


def _send_result(message: Message, note: str = "") -> SendResult:
    return SendResult(message_id=message.id, status=MessageStatus(message.status), recipient=message.recipient,
                      language=Language(message.language), body=message.body, note=note)
