"""The bulk-send wizard's service: review (dry run), the skipped list as CSV, and confirm.

Who may send to whom (checked here, not only on the page): admins any audience; front desk a
custom list of at most ``FRONT_DESK_MAX_RECIPIENTS``; analysts nothing. Confirming creates ONE
bulk job per draft (its idempotency key), also when clicked twice or by two admins at once; the
rows are written by the worker (``app.services.bulk.expansion``), whose job ``confirm`` enqueues
once its session commits, not by the page.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import pricing
from app.config import get_settings
from app.csv_safe import to_csv
from app.errors import NotFoundError, PermissionDenied, ValidationError
from app.segments import count_segments
from app.services import audit, tenants
from app.services.bulk import audience as audiences
from app.services.bulk.expansion import EXPAND_JOB
from app.services.bulk.plan import DEFERRED, Content, plan_grouped
from app.services.bulk.recipients import Rejected
from app.services.message_content import render_body
from app.services.permissions import Actor, Permission, authorize
from app.services.queueing import enqueue_after_commit
from app.services.whatsapp_templates import ensure_sendable_in_bulk
from db.enums import BulkJobStatus, Channel, Language, MessageClass, Role
from db.models import BulkJob, MessageTemplate, MessageTemplateVersion
from db.tenancy import TenantSession
from db.types import utcnow

FRONT_DESK_MAX_RECIPIENTS = 20
MAX_SKIPPED_KEPT = 100_000


@dataclass(frozen=True)
class Draft:
    """Everything the wizard collected; plain data kept in the page's session state."""

    idempotency_key: str
    audience: dict[str, Any]
    channel: Channel
    template_id: uuid.UUID | None = None
    body_en: str = ""
    body_ar: str = ""
    message_class: MessageClass = MessageClass.SERVICE
    name: str = ""
    import_rejections: tuple[Rejected, ...] = ()  # invalid numbers and duplicates from the upload


@dataclass(frozen=True)
class SkippedRecipient:
    row: int | None
    recipient: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Sample:
    language: Language
    body: str
    segments: int
    encoding: str


@dataclass
class DryRun:
    """The review's numbers, one meaning each: ``audience_size`` (every recipient considered, rows the
    file refused included) = ``sendable`` (will be sent, deferred ones included) + ``skipped_count``
    (will not be sent) = the sum of ``skipped_by_reason``."""

    audience_size: int  # every recipient considered: the audience, and a list's refused rows
    will_send: dict[str, int]  # "SMS, English" -> count; adds up to ``sendable``
    deferred: int  # of ``sendable``: sent later, at the end of the patient's quiet hours
    skipped: list[SkippedRecipient]  # the first MAX_SKIPPED_KEPT of those not sent, with why
    skipped_by_reason: dict[str, int]  # every one not sent, not only those kept; adds up to skipped_count
    samples: list[Sample]
    segments_total: int
    estimated_cost: float
    currency: str
    duration_seconds: float
    message_class: MessageClass
    class_effect: str
    confirm_threshold: int
    sendable: int = 0  # the number that will be sent, and the number an admin types to confirm a large send
    notes: list[str] = field(default_factory=list)
    later: list[SkippedRecipient] = field(default_factory=list)  # the first deferred ones (quiet hours)

    @property
    def skipped_count(self) -> int:
        """Recipients who will not get the message (deferred ones will, later)."""
        return sum(self.skipped_by_reason.values())

    @property
    def needs_typed_count(self) -> bool:
        """Whether confirming asks for ``sendable`` to be typed (more than ``BULK_CONFIRM_THRESHOLD``)."""
        return self.sendable > self.confirm_threshold


def will_send_label(channel: Channel, language: Language) -> str:
    """How the review names a channel and language: ``SMS, Arabic``."""
    return f"{channel.label}, {language.label}"


@dataclass(frozen=True)
class JobCreated:
    bulk_job_id: uuid.UUID
    status: BulkJobStatus
    duplicate: bool
    scheduled_at: dt.datetime | None


def new_draft_key() -> str:
    return f"bulk-draft-{uuid.uuid4().hex}"


# --- permissions ------------------------------------------------------------------------------


def authorize_audience(session: TenantSession, actor: Actor, audience: dict[str, Any]) -> None:
    """Admins: any audience. Front desk: a custom list of at most 20. Everyone else: refused."""
    if actor.can(Permission.BULK_SEND):
        authorize(session, actor, Permission.BULK_SEND)
        return
    if actor.role != Role.FRONT_DESK:
        raise PermissionDenied(f"Your role ({actor.role.label}) cannot send messages.")
    authorize(session, actor, Permission.SEND_MESSAGES)
    if audience.get("kind") != "list":
        raise PermissionDenied("Front desk can send to a custom list only (e.g. today's clinic list).")
    refusal = list_too_long(actor, len(audience.get("recipients") or []))
    if refusal:
        raise PermissionDenied(refusal)


def list_too_long(actor: Actor, recipients: int) -> str | None:
    """Why ``actor`` may not send to a list of ``recipients`` (front desk: at most
    ``FRONT_DESK_MAX_RECIPIENTS``), or None when they may. The page asks before it calls a list ready."""
    if actor.can(Permission.BULK_SEND) or recipients <= FRONT_DESK_MAX_RECIPIENTS:
        return None
    return (f"Front desk can send to at most {FRONT_DESK_MAX_RECIPIENTS} recipients at once; this list has "
            f"{recipients:,}. Shorten it, or ask an admin for a bigger send.")


def may_use(actor: Actor) -> bool:
    return actor.can(Permission.BULK_SEND) or actor.role == Role.FRONT_DESK


def allowed_kinds(actor: Actor) -> tuple[str, ...]:
    return audiences.KINDS if actor.can(Permission.BULK_SEND) else ("list",)


# --- content ----------------------------------------------------------------------------------


def _check_template_sendable(session: TenantSession, template: MessageTemplate) -> None:
    """The one place a template is checked before a bulk send: active, and for WhatsApp approved."""
    if not template.is_active:
        raise ValidationError(f"The template '{template.code}' is not active.", field="template")
    ensure_sendable_in_bulk(session, template)


@dataclass(frozen=True)
class WizardOptions:
    kinds: tuple[str, ...]
    tags: list[str]
    templates: list[tuple[uuid.UUID, str]]
    region: str
    timezone: str
    confirm_threshold: int
    max_upload_bytes: int


def authorize_use(session: TenantSession, actor: Actor) -> None:
    """Refuse anyone who may not use the wizard at all; also checks ``session`` is the actor's clinic."""
    if not may_use(actor):
        raise PermissionDenied(f"Your role ({actor.role.label}) cannot send messages.")
    authorize(session, actor, Permission.BULK_SEND if actor.can(Permission.BULK_SEND) else Permission.SEND_MESSAGES)


def options(session: TenantSession, actor: Actor, channel: Channel) -> WizardOptions:
    """What the wizard's pickers offer this user for ``channel``."""
    authorize_use(session, actor)
    tenant = tenants.current(session)
    settings = get_settings()
    return WizardOptions(
        kinds=allowed_kinds(actor), tags=audiences.clinic_tags(session) if actor.can(Permission.BULK_SEND) else [],
        templates=active_templates(session, channel), region=tenant.default_region, timezone=tenant.timezone,
        confirm_threshold=settings.bulk_confirm_threshold,
        max_upload_bytes=int(settings.bulk_upload_max_mb * 1024 * 1024))


def active_templates(session: TenantSession, channel: Channel) -> list[tuple[uuid.UUID, str]]:
    """(id, "name (code)") of the active templates for ``channel``."""
    rows = session.execute(select(MessageTemplate.id, MessageTemplate.name, MessageTemplate.code).where(
        MessageTemplate.channel == channel, MessageTemplate.is_active.is_(True),
        MessageTemplate.deleted_at.is_(None)).order_by(MessageTemplate.name))
    return [(row.id, f"{row.name} ({row.code})") for row in rows]


def content(session: TenantSession, draft: Draft) -> Content:
    """The text the draft sends, checked: a template's current version, or the custom text."""
    if draft.template_id is not None:
        template = session.scalar(select(MessageTemplate).where(
            MessageTemplate.id == draft.template_id, MessageTemplate.deleted_at.is_(None)))
        if template is None:
            raise NotFoundError("That template does not exist in your clinic.")
        if Channel(template.channel) != draft.channel:
            raise ValidationError(f"The template is for {Channel(template.channel).label}, not "
                                  f"{draft.channel.label}.", field="template")
        _check_template_sendable(session, template)
        version = session.scalar(select(MessageTemplateVersion).where(
            MessageTemplateVersion.template_id == template.id,
            MessageTemplateVersion.version == template.current_version))
        if version is None:
            raise NotFoundError("The template has no saved version.")
        return Content(channel=draft.channel, message_class=MessageClass(template.message_class),
                       body_en=version.body_en, body_ar=version.body_ar, subject_en=version.subject_en,
                       subject_ar=version.subject_ar, template_id=template.id, template_version_id=version.id)
    if not draft.body_en.strip():
        raise ValidationError("Write the English text (the Arabic text is optional).", field="body_en")
    result = Content(channel=draft.channel, message_class=MessageClass(draft.message_class),
                     body_en=draft.body_en, body_ar=draft.body_ar)
    result.variables(Language.EN)  # a syntax error refuses the draft here, with its reason
    if result.has_arabic:
        result.variables(Language.AR)
    return result


def class_effect(message_class: MessageClass, channel: Channel, window: tuple[dt.time, dt.time]) -> str:
    """What the class means for this send; ``window`` is the clinic's promotional window."""
    if message_class == MessageClass.PROMOTIONAL:
        sender = " SMS go out under the clinic's -AD sender." if channel == Channel.SMS else ""
        return (f"Promotional: only patients with recorded consent receive it; it is sent between "
                f"{window[0].strftime('%H:%M')} and {window[1].strftime('%H:%M')} clinic time.{sender}")
    return "Service: sent to everyone who has not opted out of the channel, at any time of day."


# --- review -----------------------------------------------------------------------------------




def dry_run(session: TenantSession, actor: Actor, draft: Draft, *, send_at: dt.datetime | None = None) -> DryRun:
    """What confirming would do, without writing anything: counts, who is skipped and why, samples, cost."""
    audience = audiences.validate(draft.audience)
    authorize_audience(session, actor, audience)
    tenant = tenants.current(session)
    body = content(session, draft)
    settings = get_settings()
    now = send_at or utcnow()
    skipped = [SkippedRecipient(r.row, r.recipient, "invalid number" if r.reason.startswith("invalid") else
                                "duplicate", r.reason) for r in draft.import_rejections]
    reasons = Counter(s.reason for s in skipped)
    later: list[SkippedRecipient] = []
    will_send: Counter[str] = Counter()
    samples: dict[Language, Sample] = {}
    deferred = size = segments = 0

    def listed(item: Any, reason: str, detail: str, count: int, contacts: Any) -> None:
        into = later if reason == DEFERRED else skipped
        if reason != DEFERRED:
            reasons[reason] += count
        room = MAX_SKIPPED_KEPT - len(into)
        if room > 0:
            who = [item.recipient] if contacts is None else contacts(min(room, count))
            into.extend(SkippedRecipient(item.row, recipient, reason, detail) for recipient in who)

    def tally(item: Any, count: int = 1, contacts: Any = None) -> None:
        """``count`` recipients planned as ``item`` (a group's stand-in lists its members' contacts)."""
        nonlocal size, segments, deferred
        size += count
        if item.skip is not None:
            listed(item, item.skip, item.detail, count, contacts)
            return
        # A text that names the recipient is rendered for each one, as the expansion will: a long
        # name can make it too long, an Arabic name makes an English SMS UCS-2 (more parts).
        if body.per_recipient or item.language not in samples:
            try:
                text = render_body(body.source(item.language), item.values, body.channel)
            except ValidationError as exc:
                listed(item, "text cannot be sent", str(exc), count, contacts)
                return
            parts = pricing.segments(body.channel, text)
            samples.setdefault(item.language, Sample(item.language, text, parts, count_segments(text).encoding))
        else:
            parts = samples[item.language].segments
        segments += parts * count
        will_send[will_send_label(body.channel, item.language)] += count
        if item.deferred:
            deferred += count
            listed(item, DEFERRED, item.detail, count, contacts)

    groups, one_by_one = plan_grouped(session, tenant, audience, body, now)
    for group in groups:
        tally(group.planned, group.count, group.contacts)
    for item in one_by_one:
        tally(item)
    sendable = sum(will_send.values())
    rate = settings.rate_for(body.channel.value)
    cost = pricing.estimate(body.channel, segments=segments, messages=sendable, settings=settings)
    notes = []
    if audience.get("kind") == "list":
        columns_missing = body.variables(Language.EN) - set(_list_variables(audience))
        if columns_missing and all(s.reason == "missing variable" for s in skipped if s.reason != "invalid number"):
            notes.append("The text uses " + ", ".join(sorted(columns_missing)) +
                         ", which the list does not have for every recipient.")
    return DryRun(
        audience_size=size + len(draft.import_rejections), will_send=dict(will_send), deferred=deferred,
        skipped=skipped, later=later,
        skipped_by_reason=dict(reasons), samples=[samples[lang] for lang in Language if lang in samples],
        segments_total=segments, estimated_cost=round(cost, 4), currency=settings.price_currency,
        duration_seconds=sendable / rate if rate else 0.0, message_class=body.message_class,
        class_effect=class_effect(body.message_class, body.channel, tenant.promotional_window),
        confirm_threshold=settings.bulk_confirm_threshold, sendable=sendable, notes=notes,
    )


def _list_variables(audience: dict[str, Any]) -> set[str]:
    names = {"clinic_name", "clinic_phone"}
    for item in audience.get("recipients") or []:
        names.update(k for k, v in (item.get("variables") or {}).items() if str(v).strip())
        if item.get("name"):
            names.update({"patient_name", "patient_first_name"})
    return names


def skipped_csv(session: TenantSession, actor: Actor, review: DryRun) -> bytes:
    """The skipped list as a CSV download (spreadsheet formulas neutralised); audited as an export."""
    authorize_use(session, actor)
    data = to_csv(["row", "recipient", "reason", "detail"],
                  ((item.row or "", item.recipient, item.reason, item.detail) for item in review.skipped))
    audit.record(session, actor, "bulk.skipped_export", object_type="bulk_draft",
                 details={"rows": len(review.skipped)})
    return data


# --- confirm ----------------------------------------------------------------------------------


def clinic_time_to_utc(session: TenantSession, local: dt.datetime) -> dt.datetime:
    """A wall-clock time typed in the clinic's time zone, as UTC."""
    zone = zoneinfo.ZoneInfo(tenants.current(session).timezone)
    return local.replace(tzinfo=zone).astimezone(dt.UTC) if local.tzinfo is None else local.astimezone(dt.UTC)


def confirm(session: TenantSession, actor: Actor, draft: Draft, *, typed_count: int | None = None,
            send_at_local: dt.datetime | None = None, now: dt.datetime | None = None,
            count_confirmed_by_caller: bool = False) -> JobCreated:
    """Create the draft's bulk job (once per idempotency key); the worker expands it after commit.

    When more than ``BULK_CONFIRM_THRESHOLD`` messages will be sent, ``typed_count`` must equal that
    number (the review's ``sendable``, worked out again here), not the size of the audience; a
    program that sends on purpose (``MessagingService.send_bulk_messages``) says
    ``count_confirmed_by_caller=True`` instead. ``send_at_local`` is clinic time and must be in the future.
    """
    audience = audiences.validate(draft.audience)
    authorize_audience(session, actor, audience)
    existing = session.scalar(select(BulkJob).where(BulkJob.idempotency_key == draft.idempotency_key))
    if existing is not None:
        return _created(existing, duplicate=True)
    tenant = tenants.current(session)
    body = content(session, draft)
    now = now or utcnow()
    send_at = clinic_time_to_utc(session, send_at_local) if send_at_local else None
    if send_at is not None and send_at <= now:
        raise ValidationError("The scheduled time is in the past (clinic time).", field="send_at")
    size = audiences.count(session, audience, draft.channel, tenant)
    if size == 0:
        raise ValidationError("Nobody in this audience can be sent to.", field="audience")
    threshold = get_settings().bulk_confirm_threshold
    if size > threshold and not count_confirmed_by_caller:  # only then can more than the threshold be sent
        review = dry_run(session, actor, draft, send_at=send_at)
        if review.needs_typed_count and typed_count != review.sendable:
            raise ValidationError(
                f"This send goes to {review.sendable:,} recipients ({review.skipped_count:,} of the "
                f"{review.audience_size:,} are skipped). Type {review.sendable} to confirm.", field="typed_count")
    job = BulkJob(
        tenant_id=tenant.id, name=draft.name or f"{draft.channel.label} to "
                                                f"{size + len(draft.import_rejections):,} recipients",  # as listed
        channel=draft.channel, status=BulkJobStatus.EXPANDING, audience=audience, template_id=body.template_id,
        template_version_id=body.template_version_id, custom_body_en="" if body.template_id else body.body_en,
        custom_body_ar="" if body.template_id else body.body_ar, message_class=body.message_class,
        idempotency_key=draft.idempotency_key, total_recipients=size + len(draft.import_rejections),
        rejected_count=len(draft.import_rejections),
        rejections=[{"row": r.row, "recipient": r.recipient, "reason": r.reason} for r in draft.import_rejections],
        scheduled_at=send_at, created_by_id=actor.user_id,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:  # another click or another admin created it a moment ago
        existing = session.scalar(select(BulkJob).where(BulkJob.idempotency_key == draft.idempotency_key))
        if existing is None:
            raise
        return _created(existing, duplicate=True)
    enqueue_after_commit(session, EXPAND_JOB, str(job.id))  # the worker writes the rows
    audit.record(session, actor, "bulk_job.create", object_type="bulk_job", object_id=job.id, details={
        "audience": audiences.audit_definition(audience), "recipients": size,
        "refused_in_file": len(draft.import_rejections), "channel": draft.channel.value,
        "template_id": str(body.template_id) if body.template_id else None,
        "template_version_id": str(body.template_version_id) if body.template_version_id else None,
        "message_class": body.message_class.value, "scheduled_at": send_at.isoformat() if send_at else None,
    })
    return _created(job, duplicate=False)


def _created(job: BulkJob, *, duplicate: bool) -> JobCreated:
    return JobCreated(bulk_job_id=job.id, status=BulkJobStatus(job.status), duplicate=duplicate,
                      scheduled_at=job.scheduled_at)


def start_expansion(session: TenantSession, actor: Actor, bulk_job_id: uuid.UUID) -> bool:
    """Ask the worker again for a job still being prepared (after the commit; a second ask is harmless).

    ``confirm`` asks once by itself; this is the jobs list's "Start preparing again" for an
    expansion that looks lost. False when the job is no longer being prepared.
    """
    authorize_use(session, actor)
    job = session.get(BulkJob, bulk_job_id)
    if job is None:
        raise NotFoundError("That bulk job does not exist in your clinic.")
    if BulkJobStatus(job.status) != BulkJobStatus.EXPANDING:
        return False
    enqueue_after_commit(session, EXPAND_JOB, str(job.id))
    return True


def looks_stuck(created_at: dt.datetime, now: dt.datetime | None = None) -> bool:
    """An expansion still not done after this long was probably lost (the sweeper's threshold for
    asking again, ``expansion.resume_lost``)."""
    limit = dt.timedelta(seconds=get_settings().sweep_expanding_after_seconds)
    return (now or utcnow()) - created_at > limit
