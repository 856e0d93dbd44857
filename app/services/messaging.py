"""Sending messages: one, many, retry, cancel, schedule, pause. The public Python API.

```python
from app.services.messaging import MessagingService
service = MessagingService()                      # the configured database and queue
result = service.send_bulk_messages(
    recipients=['+966501234567', '+966507654321'],
    message='Your appointment is tomorrow',
    channel='SMS',
    tenant_id=tenant_id,
)
result.bulk_job_id, result.accepted, result.rejected
```

Every message row is written (and committed) before anything is enqueued; jobs carry ids only.
Calls made on behalf of a signed-in staff member pass ``actor=`` and are checked against the
role table; calls without an actor are trusted integrations and are audited as ``api``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app import pricing
from app.delivery.dispatch import assign_jobs, enqueue
from app.delivery.lifecycle import transition
from app.delivery.queue import BATCH_SIZE, JobQueue, plan_batches
from app.errors import ConflictError, NotFoundError, ValidationError
from app.phones import InvalidPhoneNumber, normalise_phone
from app.services import audit, tenants
from app.services.message_content import choose_language, patient_variables, render_body
from app.services.permissions import Actor, Permission, authorize
from app.services.whatsapp_templates import ensure_sendable_in_bulk
from app.templating import compile_template
from db.enums import CANCELLABLE, RETRYABLE, BulkJobStatus, Channel, Language, MessageClass, MessageStatus
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

log = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_RAW_RECIPIENTS = 100_000


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


class MessagingService:
    """Send, schedule, retry and cancel messages for a clinic."""

    def __init__(self, engine: Engine | None = None, queue: JobQueue | None = None) -> None:
        self._engine = engine
        self._queue = queue

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from app.database import get_engine

            self._engine = get_engine()
        return self._engine

    @property
    def queue(self) -> JobQueue:
        if self._queue is None:
            from app.delivery.runtime import get_runtime

            self._queue = get_runtime().queue
        return self._queue

    # -- helpers -------------------------------------------------------------------------------

    def _check(self, session: TenantSession, actor: Actor | None, permission: Permission) -> None:
        if actor is not None:
            authorize(session, actor, permission)


    # -- bulk ----------------------------------------------------------------------------------

    def send_bulk_messages(
        self,
        recipients: Iterable[str],
        message: str,
        channel: str | Channel,
        tenant_id: uuid.UUID,
        *,
        message_ar: str = "",
        subject: str = "",
        actor: Actor | None = None,
        urgent: bool = False,
        scheduled_at: dt.datetime | None = None,
        idempotency_key: str | None = None,
        name: str = "",
        message_class: MessageClass = MessageClass.SERVICE,
        template_code: str | None = None,
    ) -> BulkSendResult:
        """Send one text (English, optionally Arabic) to a list of phone numbers or e-mail addresses.

        Each recipient is normalised (E.164 with the clinic's region); invalid ones and
        duplicates are rejected with their reason and position, and everything valid is sent.
        A known recipient gets the patient's language and name; opted-out patients are
        suppressed by the worker. The same ``idempotency_key`` twice creates one job.

        With ``template_code`` the template's current version is the text (``message`` and
        ``message_ar`` are ignored) and its class applies; a WhatsApp template must be approved
        by WhatsApp (``whatsapp_templates.ensure_sendable_in_bulk``), else nothing is queued.
        """
        try:
            channel = Channel.parse(channel)
        except ValueError as exc:
            raise ValidationError(str(exc), field="channel") from None
        now = utcnow()
        send_at = _parse_time(scheduled_at, now)
        raw = list(recipients)
        if not raw:
            raise ValidationError("Give at least one recipient.", field="recipients")
        if len(raw) > MAX_RAW_RECIPIENTS:
            raise ValidationError(f"At most {MAX_RAW_RECIPIENTS:,} recipients per call.", field="recipients")
        if template_code is None and not (message or "").strip():
            raise ValidationError("The message is empty.", field="message")
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.BULK_SEND)
            tenant = tenants.current(session, active=True)
            template = version = None
            if template_code is not None:
                template, version = self._template(session, template_code, channel)
                ensure_sendable_in_bulk(session, template)
                message, message_ar = version.body_en, version.body_ar
                subject, message_class = subject or version.subject_en, MessageClass(template.message_class)
            if idempotency_key:
                existing = session.scalar(select(BulkJob).where(BulkJob.idempotency_key == idempotency_key))
                if existing is not None:
                    return _bulk_result(existing, duplicate=True)
            accepted: list[str] = []
            rejected: list[RejectedRecipient] = []
            first_row: dict[str, int] = {}
            for row, value in enumerate(raw, start=1):
                try:
                    normal = normalise_recipient(str(value), channel, tenant.default_region)
                except ValidationError as exc:
                    rejected.append(RejectedRecipient(str(value), str(exc), row))
                    continue
                if normal in first_row:
                    rejected.append(RejectedRecipient(str(value), f"duplicate of row {first_row[normal]}", row))
                    continue
                first_row[normal] = row
                accepted.append(normal)
            for source in (message, message_ar):
                if source.strip():
                    compile_template(source)  # a syntax error refuses the whole send, before anything
            job = BulkJob(
                tenant_id=tenant.id, name=name or f"{channel.label} to {len(accepted):,} recipients",
                channel=channel, status=BulkJobStatus.SCHEDULED if send_at else BulkJobStatus.SENDING,
                audience={"kind": "list", "size": len(raw)}, custom_body_en="" if template else message,
                custom_body_ar="" if template else message_ar,
                template_id=template.id if template else None, template_version_id=version.id if version else None,
                message_class=message_class, idempotency_key=idempotency_key, total_recipients=len(raw),
                scheduled_at=send_at, started_at=None if send_at else now,
                created_by_id=actor.user_id if actor else None,
            )
            session.add(job)
            try:
                session.flush()
            except IntegrityError:
                raise ConflictError("This send was already submitted.") from None
            rows, unrenderable = self._bulk_rows(session, tenant, job, accepted, message, message_ar, subject,
                                                 channel, urgent, send_at, actor, now, message_class, template)
            batches = [] if send_at else plan_batches([r["id"] for r in rows])
            for position, row in enumerate(rows):  # batches keep the rows' order
                row["delivery_job_id"] = batches[position // BATCH_SIZE][0] if batches else None
            rejected.extend(RejectedRecipient(r, reason, first_row[r]) for r, reason in unrenderable)
            rejected.sort(key=lambda r: r.row)
            job.accepted_count, job.rejected_count = len(rows), len(rejected)
            job.rejections = [{"row": r.row, "recipient": r.recipient, "reason": r.reason} for r in rejected[:1000]]
            if not rows:
                raise ValidationError("No recipient can be sent to: " + "; ".join(
                    f"row {r.row}: {r.reason}" for r in rejected[:5]), field="recipients")
            for start in range(0, len(rows), 5000):
                session.execute(insert(Message), rows[start:start + 5000])
            audit.record(session, actor, "message.bulk_send", object_type="bulk_job", object_id=job.id,
                         details={"channel": channel.value, "accepted": len(rows), "rejected": len(rejected),
                                  "scheduled_at": send_at.isoformat() if send_at else None},
                         actor_name=None if actor else "api")
            result = BulkSendResult(bulk_job_id=job.id, accepted=len(rows), rejected=rejected)
        enqueue(self.queue, batches)
        return result

    def _bulk_rows(self, session: TenantSession, tenant: Tenant, job: BulkJob, recipients: list[str],
                   message: str, message_ar: str, subject: str, channel: Channel, urgent: bool,
                   send_at: dt.datetime | None, actor: Actor | None, now: dt.datetime,
                   message_class: MessageClass, template: MessageTemplate | None = None,
                   ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Message rows for the valid recipients, and the recipients whose text cannot be rendered."""
        column = Patient.email if channel == Channel.EMAIL else Patient.phone_e164
        patients: dict[str, Patient] = {}
        prefs: dict[uuid.UUID, NotificationPreference] = {}
        for start in range(0, len(recipients), 1000):
            chunk = recipients[start:start + 1000]
            for patient in session.scalars(select(Patient).where(column.in_(chunk), Patient.deleted_at.is_(None))):
                patients.setdefault(str(getattr(patient, column.key)), patient)
        ids = [p.id for p in patients.values()]
        for start in range(0, len(ids), 1000):
            for pref in session.scalars(select(NotificationPreference).where(
                    NotificationPreference.patient_id.in_(ids[start:start + 1000]))):
                prefs[pref.patient_id] = pref
        rows = []
        unrenderable: list[tuple[str, str]] = []
        status = MessageStatus.SCHEDULED if send_at else MessageStatus.QUEUED
        rendered_cache: dict[tuple[Language, uuid.UUID | None], str | ValidationError] = {}
        # A WhatsApp Content template's numbered variables are filled from these at send time.
        content_names = set((template.whatsapp_variable_map or {}).values()) if template else set()
        variables_cache: dict[tuple[Language, uuid.UUID | None], dict[str, str]] = {}
        for recipient in recipients:
            patient = patients.get(recipient)
            choice = choose_language(preference=prefs.get(patient.id) if patient else None, patient=patient,
                                     tenant=tenant, has_arabic_body=bool(message_ar.strip()))
            source = message_ar if choice.language == Language.AR else message
            key = (choice.language, patient.id if patient and "{" in source else None)
            if key not in rendered_cache:
                values = patient_variables(session, tenant, patient, choice.language, now=now)
                variables_cache[key] = {n: str(values.get(n, "")) for n in content_names}
                try:
                    rendered_cache[key] = render_body(source, values, channel)
                except ValidationError as exc:
                    rendered_cache[key] = exc
            body = rendered_cache[key]
            if isinstance(body, ValidationError):
                unrenderable.append((recipient, str(body)))
                continue
            rows.append({
                "id": uuid.uuid4(), "tenant_id": tenant.id, "patient_id": patient.id if patient else None,
                "bulk_job_id": job.id, "channel": channel, "message_class": message_class,
                "recipient": recipient, "language": choice.language, "subject": subject, "body": body,
                "variables": variables_cache.get(key, {}), "status": status,
                "template_id": template.id if template else None,
                "template_version_id": job.template_version_id, "urgent": urgent, "is_test": False,
                "segments": pricing.segments(channel, body),
                "scheduled_at": send_at, "queued_at": None if send_at else now,
                "enqueued_at": None if send_at else now, "created_by_id": actor.user_id if actor else None,
                "created_at": now, "updated_at": now, "attempts": 0,
            })
        return rows, unrenderable

    # -- one message ---------------------------------------------------------------------------

    def send_message(
        self,
        tenant_id: uuid.UUID,
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
        actor: Actor | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send to a patient (their contact for the channel) or a raw recipient, by template or text."""
        try:
            channel = Channel.parse(channel)
        except ValueError as exc:
            raise ValidationError(str(exc), field="channel") from None
        if (template_code is None) == (text is None):
            raise ValidationError("Give either a template code or a text.", field="template_code")
        now = utcnow()
        send_at = _parse_time(scheduled_at, now)
        requested = Language(language) if language else None
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.SEND_MESSAGES)
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
                patient = session.scalar(select(Patient).where(column == address, Patient.deleted_at.is_(None))
                                         .limit(1))
            preference = session.scalar(select(NotificationPreference).where(
                NotificationPreference.patient_id == patient.id)) if patient else None
            template = version = None
            message_class = MessageClass.SERVICE
            if template_code is not None:
                template, version = self._template(session, template_code, channel)
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
                created_by_id=actor.user_id if actor else None, channel=channel, message_class=message_class,
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
            batches = [] if send_at else assign_jobs(session, [row.id], now)
            audit.record(session, actor, "message.send_test" if is_test else "message.send", object_type="message",
                         object_id=row.id, details={"channel": channel.value, "template": template_code,
                                                    "scheduled_at": send_at.isoformat() if send_at else None},
                         actor_name=None if actor else "api")
            note = "The Arabic text is empty, so the English text was used." if choice.fell_back_to_english else ""
            result = _send_result(row, note=note)
        enqueue(self.queue, batches)
        return result

    def schedule(self, tenant_id: uuid.UUID, channel: str | Channel, send_at: dt.datetime, **kwargs: Any) -> SendResult:
        """``send_message`` at a future time (the message waits in ``scheduled`` and can be cancelled)."""
        return self.send_message(tenant_id, channel, scheduled_at=send_at, **kwargs)

    @staticmethod
    def _template(
        session: TenantSession, code: str, channel: Channel
    ) -> tuple[MessageTemplate, MessageTemplateVersion]:
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

    # -- retry / cancel ------------------------------------------------------------------------

    def retry(self, tenant_id: uuid.UUID, message_ids: Sequence[uuid.UUID], *,
              actor: Actor | None = None) -> list[SendResult]:
        """A new attempt for each failed, undelivered or unknown message: a new row linked to the original.

        Each original can be retried once (retry the newest one in a chain); asking twice returns
        the same new message, so a double click never sends twice. Opt-outs still apply.
        """
        results: list[SendResult] = []
        new_ids: list[uuid.UUID] = []
        now = utcnow()
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.RETRY_MESSAGES)
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
                    retry_of_id=original.id, created_by_id=actor.user_id if actor else None,
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
                             details={"new_message_id": str(row.id)}, actor_name=None if actor else "api")
            batches = assign_jobs(session, new_ids, now)
        enqueue(self.queue, batches)
        return results

    def cancel(self, tenant_id: uuid.UUID, *, message_ids: Sequence[uuid.UUID] | None = None,
               bulk_job_id: uuid.UUID | None = None, actor: Actor | None = None) -> int:
        """Cancel messages that have not started sending (scheduled or queued); return how many."""
        if not message_ids and bulk_job_id is None:
            raise ValidationError("Say which messages or which bulk job to cancel.")
        cancelled = 0
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.RETRY_MESSAGES if bulk_job_id is None else Permission.BULK_SEND)
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
                              detail=f"cancelled by {actor.username if actor else 'api'}",
                              only_from=set(CANCELLABLE), values={"status_reason": "Cancelled by staff."}):
                    cancelled += 1
            if bulk_job_id is not None:
                session.execute(update(BulkJob).where(BulkJob.id == bulk_job_id).values(
                    status=BulkJobStatus.CANCELLED, completed_at=utcnow()).execution_options(
                    synchronize_session=False))
            audit.record(session, actor, "message.cancel", object_type="bulk_job" if bulk_job_id else "message",
                         object_id=bulk_job_id or (message_ids[0] if message_ids and len(message_ids) == 1
                                                   else None),
                         details={"cancelled": cancelled, "requested": len(message_ids or [])},
                         actor_name=None if actor else "api")
        return cancelled

    # -- emergency stop ------------------------------------------------------------------------

    def pause_sending(self, tenant_id: uuid.UUID, *, actor: Actor | None = None, reason: str = "") -> bool:
        """Stop all sending for the clinic now. Waiting messages stay waiting; nothing is lost."""
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.PAUSE_SENDING)
            tenant = tenants.current(session, active=True)
            tenant.sending_paused = True
            audit.record(session, actor, "sending.pause", object_type="tenant", object_id=tenant.id,
                         details={"reason": reason[:500]}, actor_name=None if actor else "api")
        return True

    def resume_sending(self, tenant_id: uuid.UUID, *, actor: Actor | None = None) -> int:
        """Resume sending; every waiting message is enqueued again. Returns how many."""
        now = utcnow()
        with tenant_session(self.engine, tenant_id) as session:
            self._check(session, actor, Permission.PAUSE_SENDING)
            tenant = tenants.current(session, active=True)
            tenant.sending_paused = False
            ids = list(session.scalars(select(Message.id).where(Message.status == MessageStatus.QUEUED)))
            batches = assign_jobs(session, ids, now)
            audit.record(session, actor, "sending.resume", object_type="tenant", object_id=tenant.id,
                         details={"waiting": len(ids)}, actor_name=None if actor else "api")
        enqueue(self.queue, batches)
        return len(ids)

    def is_paused(self, tenant_id: uuid.UUID) -> bool:
        with tenant_session(self.engine, tenant_id) as session:
            return bool(session.scalar(select(Tenant.sending_paused).where(Tenant.id == tenant_id)))

    def bulk_job_counts(self, tenant_id: uuid.UUID, bulk_job_id: uuid.UUID) -> dict[str, int]:
        """How many of a bulk job's messages are in each status."""
        with tenant_session(self.engine, tenant_id) as session:
            rows = session.execute(select(Message.status, func.count()).where(Message.bulk_job_id == bulk_job_id)
                                   .group_by(Message.status)).all()
            return {MessageStatus(s).value: n for s, n in rows}


def _bulk_result(job: BulkJob, *, duplicate: bool = False) -> BulkSendResult:
    rejected = [RejectedRecipient(r["recipient"], r["reason"], r["row"]) for r in (job.rejections or [])]
    return BulkSendResult(bulk_job_id=job.id, accepted=job.accepted_count, rejected=rejected,
                          duplicate_request=duplicate)


def _send_result(message: Message, note: str = "") -> SendResult:
    return SendResult(message_id=message.id, status=MessageStatus(message.status), recipient=message.recipient,
                      language=Language(message.language), body=message.body, note=note)
