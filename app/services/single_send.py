"""One message to one patient: what can be sent to them, a preview of exactly what they get, the send.

The front desk's (and admins') way to write to one patient, from the patient's page or from a
message's detail. Each rule comes from its one home, nothing is restated here:

- the text is checked as the template editor checks it (``templates.check_body``: segments,
  length, cost, reply lint), filled with this patient's own values instead of sample data;
- what the message class means is ``templates.class_rules``;
- whether the patient may be messaged now (opt-out, promotional consent, quiet hours, the
  promotional window, an inactive record) is ``app.delivery.policy.decide``, as the worker
  decides it just before sending;
- the language is ``message_content.choose_language`` (the preference, else the patient's, else
  the clinic's);
- WhatsApp outside the patient's 24-hour window accepts only an approved template
  (``sender.inside_whatsapp_session``, ``whatsapp_templates.ensure_sendable_in_bulk``);
- the send is ``messaging.send``: the row, the idempotency key (a double click sends once), the
  ``message.send`` audit event and the delivery job after the commit.

A draft that cannot be sent is refused with the reason in plain words and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from app.delivery.policy import decide
from app.delivery.sender import inside_whatsapp_session
from app.errors import NotFoundError, ValidationError
from app.services import messaging, tenants
from app.services.bulk.wizard import active_templates
from app.services.contacts import shown_contact
from app.services.message_content import STANDARD_VARIABLES, choose_language, patient_variables
from app.services.messaging import SendResult
from app.services.patients import _patient  # the one lookup of a clinic's (not deleted) patient
from app.services.permissions import Actor, Permission, authorize
from app.services.templates.checks import (
    BodyCheck,
    Content,
    _refuse_clinical,
    check_body,
    class_rules,
    used_variables,
)
from app.services.whatsapp_templates import ensure_sendable_in_bulk
from db.enums import Channel, Language, MessageClass
from db.models import MessageTemplate, MessageTemplateVersion, NotificationPreference, Patient, Tenant
from db.tenancy import TenantSession
from db.types import utcnow

KEY_PREFIX = "one:"  # idempotency keys of these sends (retries use "retry:", fallbacks "fallback:")


# -- what can be sent to this patient ------------------------------------------------------------


@dataclass(frozen=True)
class ChannelChoice:
    channel: Channel
    contact: str  # as the actor may see it ("" when there is none)
    reason: str  # why it cannot be used ("" when it can)

    @property
    def usable(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class SendOptions:
    patient_id: uuid.UUID
    patient_name: str
    language: Language  # the language the patient gets messages in
    channels: tuple[ChannelChoice, ...]
    preferred: Channel | None  # the first channel the patient can be reached on; None when none
    templates: dict[Channel, list[tuple[uuid.UUID, str]]]  # active templates per channel: (id, "name (code)")
    timezone: str


@dataclass(frozen=True)
class OneMessage:
    """What the staff member chose: a template or their own text, to one patient on one channel."""

    patient_id: uuid.UUID
    channel: Channel
    template_id: uuid.UUID | None = None
    text: str = ""  # the staff member's own text (when no template)
    subject: str = ""  # e-mail only, with the own text
    language: Language | None = None  # None: the patient's language
    variables: Mapping[str, str] = field(default_factory=dict)  # values typed for what the record lacks
    send_at_local: dt.datetime | None = None  # a later time, on the clinic's clock; None: now
    urgent: bool = False  # goes through the patient's quiet hours
    message_class: MessageClass = MessageClass.SERVICE  # of the own text (a template has its own)


@dataclass(frozen=True)
class Preview:
    """Exactly what the patient would get, and whether it can be sent."""

    channel: Channel
    language: Language
    message_class: MessageClass
    recipient: str
    check: BodyCheck  # the editor's check of the text with the patient's values: preview, segments, cost
    subject: str
    class_rules: tuple[str, ...]
    needs_values: tuple[str, ...]  # variables the patient's record has no value for
    problems: tuple[str, ...]  # why it cannot be sent; nothing is sent while there is one
    notes: tuple[str, ...]  # what will happen besides (waits for quiet hours, English used, ...)
    send_at: dt.datetime | None  # UTC; None: now

    @property
    def ok(self) -> bool:
        return not self.problems


def _preference(session: TenantSession, patient: Patient) -> NotificationPreference | None:
    return session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient.id))


def _name(patient: Patient) -> str:
    return patient.name_en or patient.name_ar or "The patient"


def _contact(patient: Patient, channel: Channel) -> str | None:
    return patient.email if channel == Channel.EMAIL else patient.phone_e164


def _channel_choice(actor: Actor, patient: Patient, preference: NotificationPreference | None,
                    channel: Channel) -> ChannelChoice:
    contact = _contact(patient, channel)
    if not contact:
        what = "e-mail address" if channel == Channel.EMAIL else "mobile number"
        return ChannelChoice(channel, "", f"{_name(patient)} has no {what} on record, so {channel.label} "
                                          "cannot reach them.")
    reason = "" if preference is None or preference.allows(channel) else (
        f"{_name(patient)} opted out of {channel.label} messages.")
    return ChannelChoice(channel, shown_contact(actor, contact) or "", reason)


def options(session: TenantSession, actor: Actor, patient_id: uuid.UUID) -> SendOptions:
    """The patient's channels (with why one cannot be used), language and the templates to choose from."""
    authorize(session, actor, Permission.SEND_MESSAGES)
    tenant = tenants.current(session)
    patient = _patient(session, patient_id)
    preference = _preference(session, patient)
    channels = tuple(_channel_choice(actor, patient, preference, channel) for channel in Channel)
    language = choose_language(preference=preference, patient=patient, tenant=tenant, has_arabic_body=True).language
    return SendOptions(
        patient_id=patient.id, patient_name=_name(patient), language=language, channels=channels,
        preferred=next((c.channel for c in channels if c.usable), None),
        templates={channel: active_templates(session, channel) for channel in Channel},
        timezone=tenant.timezone)


# -- the preview ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Content:
    template: MessageTemplate | None
    message_class: MessageClass
    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str


def _content(session: TenantSession, draft: OneMessage, problems: list[str]) -> _Content:
    if draft.template_id is None:
        return _Content(None, MessageClass(draft.message_class), draft.text, draft.text, draft.subject, draft.subject)
    template = session.scalar(select(MessageTemplate).where(
        MessageTemplate.id == draft.template_id, MessageTemplate.deleted_at.is_(None)))
    if template is None:
        raise NotFoundError("That template does not exist in your clinic.")
    version = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id,
        MessageTemplateVersion.version == template.current_version))
    if version is None:
        raise NotFoundError("That template has no saved version.")
    if not template.is_active:
        problems.append(f"The template '{template.code}' is not active.")
    if Channel(template.channel) != draft.channel:
        problems.append(f"The template '{template.code}' is for {Channel(template.channel).label}, "
                        f"not {draft.channel.label}.")
    return _Content(template, MessageClass(template.message_class), version.body_en, version.body_ar,
                    version.subject_en, version.subject_ar)


def _send_at(tenant: Tenant, local: dt.datetime | None, now: dt.datetime, problems: list[str]) -> dt.datetime | None:
    if local is None:
        return None
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    at = (local.replace(tzinfo=zone) if local.tzinfo is None else local).astimezone(dt.UTC)
    if at <= now:
        problems.append(f"The scheduled time ({local:%d %b %Y, %H:%M} clinic time) is in the past.")
    return at


def preview(session: TenantSession, actor: Actor, draft: OneMessage, *, now: dt.datetime | None = None) -> Preview:
    """What ``draft`` sends to the patient and why it could not be sent (nothing is written)."""
    authorize(session, actor, Permission.SEND_MESSAGES)
    now = now or utcnow()
    tenant = tenants.current(session, active=True)
    patient = _patient(session, draft.patient_id)
    preference = _preference(session, patient)
    problems: list[str] = []
    notes: list[str] = []
    content = _content(session, draft, problems)
    send_at = _send_at(tenant, draft.send_at_local, now, problems)

    choice = choose_language(preference=preference, patient=patient, tenant=tenant,
                             has_arabic_body=bool(content.body_ar.strip()), requested=draft.language)
    if choice.fell_back_to_english:
        notes.append("The template has no Arabic text, so the patient gets the English text.")
    language = choice.language
    arabic = language == Language.AR
    source = content.body_ar if arabic else content.body_en
    if not source.strip():
        problems.append("Write the text of the message." if content.template is None else "The template is empty.")

    values = patient_variables(session, tenant, patient, language, now=now)
    filled = {k: str(v) for k, v in {**values, **draft.variables}.items() if str(v).strip()}
    try:
        used = used_variables(source)
    except ValidationError:
        used = frozenset()  # the check below says what is wrong with the text
    custom = (used - set(STANDARD_VARIABLES)) if content.template is not None else frozenset(draft.variables)
    missing = sorted((used & (set(STANDARD_VARIABLES) | custom)) - set(filled))
    overrides = {**{name: f"[{name}]" for name in missing}, **filled}
    check = check_body(draft.channel, source, language=language, custom_variables=custom,
                       sample_values_override=overrides)
    if check.error:
        problems.append(check.error)
    problems.extend(u.message for u in check.unknown_variables)
    if check.over_limit:
        problems.append(f"Too long: {draft.channel.label} allows at most {check.limit:,} characters "
                        f"(this text has {check.characters:,}).")
    if content.template is None and content.message_class == MessageClass.PROMOTIONAL and not check.error:
        try:  # the editor's rule: no clinical details in a promotional text
            _refuse_clinical(Content(body_en=source, body_ar="", subject_en=draft.subject, subject_ar=""))
        except ValidationError as exc:
            problems.append(str(exc))
    if missing:
        problems.append(f"No value for {', '.join(missing)} on {_name(patient)}'s record: type one below.")

    subject = ""
    if draft.channel == Channel.EMAIL:
        subject_source = content.subject_ar if arabic and content.subject_ar.strip() else content.subject_en
        subject = (check_body(Channel.EMAIL, subject_source, language=language, custom_variables=custom,
                              sample_values_override=overrides).preview
                   if subject_source.strip() else tenant.name)

    reach = _channel_choice(actor, patient, preference, draft.channel)
    decision = decide(channel=draft.channel, patient=patient, preference=preference, urgent=draft.urgent,
                      message_class=content.message_class, timezone=tenant.timezone, now=send_at or now,
                      promotional_window=tenant.promotional_window)
    if not _contact(patient, draft.channel):
        problems.append(reach.reason)
    elif decision.suppress_reason:
        problems.append(decision.suppress_reason)
    elif decision.defer_until is not None:
        local = decision.defer_until.astimezone(zoneinfo.ZoneInfo(tenant.timezone))
        notes.append(f"It waits until {local:%d %b, %H:%M} clinic time: {decision.defer_reason}")
    if draft.channel == Channel.WHATSAPP and not inside_whatsapp_session(patient, send_at or now):
        outside = ("The patient has not written on WhatsApp in the last 24 hours, and outside that window "
                   "WhatsApp delivers only an approved template")
        if content.template is None:
            problems.append(f"{outside}: choose one, or send this text by SMS or e-mail.")
        else:
            try:
                ensure_sendable_in_bulk(session, content.template)
            except ValidationError as exc:
                problems.append(f"{outside}. {exc}")
    return Preview(
        channel=draft.channel, language=language, message_class=content.message_class, recipient=reach.contact,
        check=check, subject=subject,
        class_rules=tuple(class_rules(content.message_class, draft.channel, window=tenant.promotional_window)),
        needs_values=tuple(missing), problems=tuple(dict.fromkeys(problems)), notes=tuple(notes), send_at=send_at)


# -- the send ------------------------------------------------------------------------------------


def new_key() -> str:
    """A fresh idempotency key for one send form (kept until that send succeeds)."""
    return uuid.uuid4().hex


def send(session: TenantSession, actor: Actor, draft: OneMessage, *, idempotency_key: str,
         now: dt.datetime | None = None) -> SendResult:
    """Send ``draft`` (now, or at its time), once per ``idempotency_key``; refused with the first problem
    of its preview, writing nothing. The delivery job is queued after the session commits."""
    if not idempotency_key.strip():
        raise ValidationError("The send has no idempotency key.", field="idempotency_key")
    checked = preview(session, actor, draft, now=now)
    if not checked.ok:
        raise ValidationError(checked.problems[0])
    template = session.get(MessageTemplate, draft.template_id) if draft.template_id else None
    arabic = checked.language == Language.AR
    return messaging.send(
        session, actor, draft.channel, patient_id=draft.patient_id,
        template_code=template.code if template is not None else None,
        variables={k: v for k, v in draft.variables.items() if str(v).strip()} or None,
        text=None if template is not None else ("" if arabic else draft.text),
        text_ar="" if template is not None or not arabic else draft.text,
        subject=draft.subject, language=checked.language, urgent=draft.urgent, scheduled_at=checked.send_at,
        idempotency_key=KEY_PREFIX + idempotency_key.strip(), message_class=checked.message_class)
