"""Answering a thread: on the channel of the patient's last reply, through the one-message path.

- The channel is the last reply's. On WhatsApp free text is allowed only inside 24 hours of the
  patient's last WhatsApp message (``app.delivery.sender.WHATSAPP_SESSION``); outside it only a
  template WhatsApp approved (``whatsapp_templates.ensure_sendable_in_bulk``), and ``ReplyOptions.rule``
  says so in words. SMS takes free text; the preview carries the reply lint's warnings.
- A patient of the clinic with that number gets it through ``single_send`` (its preview, segment
  count, cost, class rules, opt-outs and quiet hours); a number no patient has gets it through
  ``messaging.send`` to the address, previewed with the editor's own check (``templates.check_body``).
- One ``idempotency_key`` per reply form: a double click sends once. A reply ends the thread's wait
  (``waiting_since``) and records ``inbox.reply`` with the wait it ended (see the package docstring).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from app.delivery.sender import WHATSAPP_SESSION
from app.errors import ConflictError, ValidationError
from app.services import audit, messaging, single_send, tenants
from app.services.contacts import shown_contact
from app.services.inbox.reading import _conversation
from app.services.message_content import recipient_variables
from app.services.permissions import Actor, Permission, authorize
from app.services.single_send import OneMessage, Preview
from app.services.templates import check_body, class_rules
from app.services.templates.checks import used_variables
from app.services.whatsapp_templates import ensure_sendable_in_bulk
from db.enums import Channel, Language, MessageClass, MessageStatus
from db.models import Conversation, InboundMessage, Message, MessageTemplate, MessageTemplateVersion, Patient
from db.tenancy import TenantSession
from db.types import utcnow

WHATSAPP_OPEN = ("WhatsApp lets the clinic write freely for 24 hours after the patient's last message; after that "
                 "only a template approved by WhatsApp can be sent.")
WHATSAPP_CLOSED = ("The patient last wrote on WhatsApp more than 24 hours ago. Outside those 24 hours WhatsApp "
                   "delivers only a template it approved, so choose one of those; free text would not arrive.")


@dataclass(frozen=True)
class ReplyTemplate:
    id: uuid.UUID
    code: str
    label: str  # "name (code)"


@dataclass(frozen=True)
class ReplyOptions:
    conversation_id: uuid.UUID
    channel: Channel  # the channel of the patient's last reply
    recipient: str  # as the actor may see it
    patient_id: uuid.UUID | None  # the patient the answer goes to; None: a number no patient has
    free_text: bool
    window_ends_at: dt.datetime | None  # WhatsApp: 24 h after the patient's last message (past when closed)
    rule: str  # the channel's rule in words ("" when there is none to tell)
    templates: tuple[ReplyTemplate, ...]  # what may be sent now (outside the window: approved ones only)


@dataclass(frozen=True)
class ReplyResult:
    message_id: uuid.UUID
    status: MessageStatus
    recipient: str  # as the actor may see it
    duplicate: bool  # the same form was sent before: nothing new was sent
    note: str = ""


def new_key() -> str:
    """A fresh idempotency key for one reply form (kept until that reply is sent)."""
    return single_send.new_key()


def _last_reply(session: TenantSession, conversation: Conversation) -> InboundMessage:
    reply = session.scalar(select(InboundMessage).where(InboundMessage.conversation_id == conversation.id)
                           .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(1))
    if reply is None:
        raise ValidationError("This conversation has no message from the patient to answer.")
    return reply


def _patient_at_address(session: TenantSession, conversation: Conversation) -> Patient | None:
    """The thread's patient while their number is still the one that wrote (else the address is answered)."""
    if conversation.patient_id is None:
        return None
    patient = session.scalar(select(Patient).where(Patient.id == conversation.patient_id,
                                                   Patient.deleted_at.is_(None)))
    return patient if patient is not None and patient.phone_e164 == conversation.address else None


def _last_whatsapp(session: TenantSession, conversation: Conversation, patient: Patient | None) -> dt.datetime | None:
    times = [session.scalar(select(func.max(InboundMessage.received_at)).where(
        InboundMessage.conversation_id == conversation.id, InboundMessage.channel == Channel.WHATSAPP)),
        patient.whatsapp_last_inbound_at if patient is not None else None]
    return max((t for t in times if t is not None), default=None)


def _templates(session: TenantSession, channel: Channel, approved_only: bool) -> tuple[ReplyTemplate, ...]:
    found = session.scalars(select(MessageTemplate).where(
        MessageTemplate.channel == channel, MessageTemplate.is_active.is_(True), MessageTemplate.deleted_at.is_(None))
        .order_by(MessageTemplate.name))
    usable = []
    for template in found:
        if approved_only:
            try:
                ensure_sendable_in_bulk(session, template)
            except ValidationError:
                continue
        usable.append(ReplyTemplate(template.id, template.code, f"{template.name} ({template.code})"))
    return tuple(usable)


def _options(session: TenantSession, actor: Actor, conversation: Conversation, now: dt.datetime) -> ReplyOptions:
    channel = Channel(_last_reply(session, conversation).channel)
    patient = _patient_at_address(session, conversation)
    ends = free = None
    rule = ""
    if channel == Channel.WHATSAPP:
        last = _last_whatsapp(session, conversation, patient)
        ends = last + WHATSAPP_SESSION if last is not None else None
        free = ends is not None and now < ends
        rule = WHATSAPP_OPEN if free else WHATSAPP_CLOSED
    return ReplyOptions(
        conversation_id=conversation.id, channel=channel, recipient=shown_contact(actor, conversation.address) or "",
        patient_id=patient.id if patient else None, free_text=free is not False, window_ends_at=ends, rule=rule,
        templates=_templates(session, channel, approved_only=free is False))


def reply_options(session: TenantSession, actor: Actor, conversation_id: uuid.UUID, *,
                  now: dt.datetime | None = None) -> ReplyOptions:
    """How the thread can be answered now: channel, whether free text is allowed and until when, templates."""
    authorize(session, actor, Permission.WORK_INBOX)
    return _options(session, actor, _conversation(session, conversation_id), now or utcnow())


def _template(options: ReplyOptions, code: str) -> ReplyTemplate:
    chosen = next((t for t in options.templates if t.code == code.strip()), None)
    if chosen is None:
        why = " now (outside WhatsApp's 24 hours only approved templates)" if not options.free_text else ""
        raise ValidationError(f"The template '{code}' cannot be sent on {options.channel.label}{why}.",
                              field="template_code")
    return chosen


def _check_choice(options: ReplyOptions, text: str | None, template_code: str | None) -> ReplyTemplate | None:
    """The chosen template, or None for free text; refuses what the channel's rule does not allow."""
    if (text is None) == (template_code is None):
        raise ValidationError("Write an answer or choose a template.", field="text")
    if template_code is not None:
        return _template(options, template_code)
    if not options.free_text:
        raise ValidationError(options.rule, field="text")
    return None


def _address_preview(session: TenantSession, options: ReplyOptions, conversation: Conversation, text: str,
                     template: ReplyTemplate | None) -> Preview:
    """The preview of an answer to a number no patient has: the editor's check of the text as it goes."""
    tenant = tenants.current(session, active=True)
    language = Language(tenant.default_language)
    message_class = MessageClass.SERVICE
    source = text
    if template is not None:
        row = session.get(MessageTemplate, template.id)
        version = session.scalar(select(MessageTemplateVersion).where(
            MessageTemplateVersion.template_id == template.id,
            MessageTemplateVersion.version == (row.current_version if row else 0)))
        message_class = MessageClass(row.message_class) if row else message_class
        if version is not None and language == Language.AR and not version.body_ar.strip():
            language = Language.EN
        source = (version.body_ar if language == Language.AR else version.body_en) if version else ""
    values = {k: str(v) for k, v in recipient_variables(tenant, None, language, None).items()}
    problems = [] if source.strip() else ["Write the answer."]
    try:
        lacking = sorted(used_variables(source) - set(values))
    except ValidationError:
        lacking = []  # the check below says what is wrong with the text
    if lacking:
        problems.append(f"No patient of the clinic has this number, so there is no value for {', '.join(lacking)}.")
    check = check_body(options.channel, source, language=language, sample_values_override=values)
    if check.error:
        problems.append(check.error)
    return Preview(
        channel=options.channel, language=language, message_class=message_class, recipient=options.recipient,
        check=check, subject="", class_rules=tuple(class_rules(message_class, options.channel,
                                                               window=tenant.promotional_window)),
        needs_values=tuple(lacking), problems=tuple(problems), notes=(), send_at=None)


def reply_preview(session: TenantSession, actor: Actor, conversation_id: uuid.UUID, *, text: str | None = None,
                  template_code: str | None = None, now: dt.datetime | None = None) -> Preview:
    """Exactly what the patient would get, with segments, cost, class rules and reply-lint warnings, and why
    it could not be sent (nothing is written)."""
    authorize(session, actor, Permission.WORK_INBOX)
    now = now or utcnow()
    conversation = _conversation(session, conversation_id)
    options = _options(session, actor, conversation, now)
    template = _check_choice(options, text, template_code)
    if options.patient_id is None:
        return _address_preview(session, options, conversation, text or "", template)
    return single_send.preview(session, actor, OneMessage(
        patient_id=options.patient_id, channel=options.channel, template_id=template.id if template else None,
        text=text or ""), now=now)


def reply(session: TenantSession, actor: Actor, conversation_id: uuid.UUID, *, text: str | None = None,
          template_code: str | None = None, idempotency_key: str, now: dt.datetime | None = None) -> ReplyResult:
    """Send the answer once per ``idempotency_key`` (a second call returns the first), refused with the
    reason in words and nothing written when it cannot go; the thread's wait ends."""
    authorize(session, actor, Permission.WORK_INBOX)
    if not idempotency_key.strip():
        raise ValidationError("The answer has no idempotency key.", field="idempotency_key")
    now = now or utcnow()
    conversation = _conversation(session, conversation_id)
    key = single_send.KEY_PREFIX + idempotency_key.strip()  # the key single_send gives its own sends
    sent = session.scalar(select(Message).where(Message.idempotency_key == key))
    if sent is not None:
        if sent.recipient != conversation.address:
            raise ConflictError("This form was already used to send a message to someone else.")
        return ReplyResult(sent.id, MessageStatus(sent.status), shown_contact(actor, sent.recipient) or "",
                           duplicate=True, note="already sent")
    options = _options(session, actor, conversation, now)
    template = _check_choice(options, text, template_code)
    if text is not None and not text.strip():
        raise ValidationError("Write the answer.", field="text")
    if options.patient_id is not None:
        result = single_send.send(session, actor, OneMessage(
            patient_id=options.patient_id, channel=options.channel, template_id=template.id if template else None,
            text=text or ""), idempotency_key=idempotency_key, now=now)
    else:
        preview = _address_preview(session, options, conversation, text or "", template)
        if not preview.ok:
            raise ValidationError(preview.problems[0])
        result = messaging.send(session, actor, options.channel, recipient=conversation.address,
                                template_code=template.code if template else None, text=text, text_ar=text,
                                idempotency_key=key)
    waited = conversation.waiting_since
    conversation.waiting_since = None
    audit.record(session, actor, "inbox.reply", object_type="conversation", object_id=conversation.id,
                 details={"message_id": str(result.message_id), "channel": options.channel.value,
                          "template": template.code if template else None,
                          "waiting_since": waited.isoformat() if waited else None})
    session.flush()
    return ReplyResult(result.message_id, result.status, shown_contact(actor, result.recipient) or "",
                       duplicate=False, note=result.note)
