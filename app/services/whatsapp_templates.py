"""WhatsApp approved templates: a template's link to a Twilio Content template (``HX...``), the
mapping of our variables to its numbered ones, its SMS fallback, and its approval status.

Outside the 24-hour window WhatsApp only delivers an approved template, so the worker sends
``ContentSid`` + ``ContentVariables`` there (``app.delivery.sender.build_outgoing``). The approval
is polled from Twilio's Content API (there is no push): from the editor's refresh button and by
the worker's sweep (``refresh_due_approvals``). ``ensure_sendable_in_bulk`` is the one check every
bulk send of a template goes through.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, or_, select

from app.config import Settings, get_settings
from app.errors import AppError, NotFoundError, ValidationError
from app.providers.credentials import unseal
from app.services import audit
from app.services.message_content import STANDARD_VARIABLES
from app.services.permissions import Actor, Permission, authorize
from app.templating import TemplateRenderError, compile_template
from db.enums import Channel
from db.models import MessageTemplate, MessageTemplateVersion, ProviderCredential
from db.session import system_session
from db.tenancy import TenantSession
from db.types import utcnow

log = logging.getLogger(__name__)

CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
SLOT = re.compile(r"^[1-9][0-9]?$")
APPROVED = "approved"
STATUS_LABELS = {
    APPROVED: "Approved by WhatsApp", "pending": "Waiting for WhatsApp's review", "received": "Submitted for review",
    "rejected": "Rejected by WhatsApp", "paused": "Paused by WhatsApp", "disabled": "Disabled by WhatsApp",
    "unsubmitted": "Not submitted for approval", "not_found": "Twilio has no Content template with this SID",
}
REFRESH_AFTER = dt.timedelta(minutes=10)
REFRESH_PER_PASS = 20


@dataclass(frozen=True)
class WhatsAppLink:
    template_id: uuid.UUID
    content_sid: str | None
    variable_map: dict[str, str]  # slot ("1", "2", ...) -> our variable name
    fallback_channel: Channel | None
    approval_status: str | None
    approval_reason: str
    checked_at: dt.datetime | None

    @property
    def approved(self) -> bool:
        return self.approval_status == APPROVED

    @property
    def status_label(self) -> str:
        if self.content_sid is None:
            return "No Content template linked"
        if self.approval_status is None:
            return "Not checked yet"
        return STATUS_LABELS.get(self.approval_status, self.approval_status)


def _link(template: MessageTemplate) -> WhatsAppLink:
    return WhatsAppLink(
        template.id, template.whatsapp_content_sid, dict(template.whatsapp_variable_map or {}),
        Channel(template.fallback_channel) if template.fallback_channel else None,
        template.whatsapp_approval_status, template.whatsapp_approval_reason or "",
        template.whatsapp_approval_checked_at,
    )


def _template(session: TenantSession, template_id: uuid.UUID) -> MessageTemplate:
    template = session.get(MessageTemplate, template_id)
    if template is None or template.deleted_at is not None:
        raise NotFoundError("That template does not exist in your clinic.")
    return template


def _template_variables(session: TenantSession, template: MessageTemplate) -> set[str]:
    version = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id, MessageTemplateVersion.version == template.current_version))
    used: set[str] = set()
    for source in (version.body_en, version.body_ar) if version else ():
        try:
            used |= set(compile_template(source).variables) if source.strip() else set()
        except TemplateRenderError:
            continue
    return used


def parse_variable_map(text: str) -> dict[str, str]:
    """The editor's "1 = patient_name" lines as a mapping; a ValidationError names a malformed line."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        slot, sep, name = line.partition("=")
        if not sep or not slot.strip() or not name.strip():
            raise ValidationError(f"Line {number} should look like '1 = patient_name'.", field="variable_map")
        if slot.strip() in mapping:
            raise ValidationError(f"Content variable {slot.strip()} appears twice.", field="variable_map")
        mapping[slot.strip()] = name.strip()
    return mapping


def format_variable_map(mapping: dict[str, str]) -> str:
    return "\n".join(f"{slot} = {name}" for slot, name in sorted(mapping.items(), key=lambda kv: int(kv[0])))


def get_whatsapp_link(session: TenantSession, actor: Actor, template_id: uuid.UUID) -> WhatsAppLink:
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    return _link(_template(session, template_id))


def check_variable_map(variable_map: dict[str, str], known: set[str]) -> dict[str, str]:
    """Slots 1..n, each mapped to a known variable; a ValidationError says which entry is wrong."""
    cleaned: dict[str, str] = {}
    for slot, name in variable_map.items():
        slot, name = str(slot).strip(), str(name).strip()
        if not SLOT.match(slot):
            raise ValidationError(f"'{slot}' is not a Content variable number; use 1, 2, 3 ...", field="variable_map")
        if name not in known:
            raise ValidationError(f"Content variable {slot} maps to '{name}', which this template does not know. "
                                  f"Known: {', '.join(sorted(known))}.", field="variable_map")
        cleaned[slot] = name
    expected = [str(n) for n in range(1, len(cleaned) + 1)]
    if sorted(cleaned, key=int) != expected:
        raise ValidationError(f"Content variables must be numbered 1 to {len(cleaned)} without gaps "
                              f"(got {', '.join(sorted(cleaned, key=int))}).", field="variable_map")
    return cleaned


def set_whatsapp_link(session: TenantSession, actor: Actor, template_id: uuid.UUID, *, content_sid: str,
                      variable_map: dict[str, str], fallback_channel: Channel | str | None) -> WhatsAppLink:
    """Link (or, with an empty SID, unlink) a Content template and choose the SMS fallback."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _template(session, template_id)
    if Channel(template.channel) != Channel.WHATSAPP:
        raise ValidationError("Only WhatsApp templates link to a Content template or fall back to SMS.",
                              field="content_sid")
    sid = content_sid.strip() or None
    if sid is not None and not CONTENT_SID.match(sid):
        raise ValidationError(f"'{sid}' is not a Content SID: HX followed by 32 hexadecimal characters.",
                              field="content_sid")
    known = set(STANDARD_VARIABLES) | _template_variables(session, template)
    mapping = check_variable_map(variable_map, known) if sid else {}
    fallback = Channel(fallback_channel) if fallback_channel else None
    if fallback not in (None, Channel.SMS):
        raise ValidationError("A WhatsApp template can fall back to SMS only.", field="fallback_channel")
    if sid != template.whatsapp_content_sid:
        template.whatsapp_approval_status, template.whatsapp_approval_reason = None, ""
        template.whatsapp_approval_checked_at = None
    template.whatsapp_content_sid, template.whatsapp_variable_map, template.fallback_channel = sid, mapping, fallback
    template.updated_at = utcnow()
    audit.record(session, actor, "template.whatsapp_link", object_type="template", object_id=template.id,
                 details={"content_sid": sid, "variable_map": mapping,
                          "fallback_channel": fallback.value if fallback else None})
    session.flush()
    return _link(template)


# -- approval status ---------------------------------------------------------------------------


def _twilio_account(session: TenantSession, settings: Settings, tenant_id: uuid.UUID) -> tuple[str, str]:
    """The clinic's own Twilio account when it stored one, else the environment's."""
    stored = session.scalar(select(ProviderCredential.encrypted).where(
        ProviderCredential.tenant_id == tenant_id, ProviderCredential.provider == "twilio"))
    if stored is not None:
        values = unseal(settings.credentials_key, stored)
        return values["account_sid"], values["auth_token"]
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise ValidationError("The approval cannot be checked: no Twilio account is configured for this clinic.")
    return settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()


def fetch_approval(settings: Settings, account: tuple[str, str], content_sid: str) -> tuple[str, str]:
    """(status, rejection reason) from Twilio's Content API; an AppError when Twilio cannot be asked."""
    url = f"{settings.twilio_content_api_base_url.rstrip('/')}/v1/Content/{content_sid}/ApprovalRequests"
    try:
        response = httpx.get(url, auth=account, timeout=settings.provider_timeout_seconds)
    except httpx.HTTPError as exc:
        raise AppError(f"Twilio's Content API could not be reached ({type(exc).__name__}); try again.") from None
    if response.status_code == 404:
        return "not_found", ""
    if response.status_code in (401, 403):
        raise AppError("Twilio refused our credentials for the Content API.")
    if response.status_code != 200:
        raise AppError(f"Twilio's Content API answered HTTP {response.status_code}; try again.")
    whatsapp = (response.json() or {}).get("whatsapp") or {}
    return str(whatsapp.get("status") or "unsubmitted").lower(), str(whatsapp.get("rejection_reason") or "")[:500]


def _store(template: MessageTemplate, status: str, reason: str, now: dt.datetime) -> bool:
    changed = (status, reason) != (template.whatsapp_approval_status, template.whatsapp_approval_reason or "")
    template.whatsapp_approval_status, template.whatsapp_approval_reason = status, reason
    template.whatsapp_approval_checked_at = now
    return changed


def refresh_approval(session: TenantSession, actor: Actor, template_id: uuid.UUID, *,
                     settings: Settings | None = None) -> WhatsAppLink:
    """Ask Twilio now (the editor's refresh button); a changed status is audited."""
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    settings = settings or get_settings()
    template = _template(session, template_id)
    if not template.whatsapp_content_sid:
        raise ValidationError("Link a Content template first.", field="content_sid")
    before = template.whatsapp_approval_status
    account = _twilio_account(session, settings, template.tenant_id)
    status, reason = fetch_approval(settings, account, template.whatsapp_content_sid)
    if _store(template, status, reason, utcnow()):
        audit.record(session, actor, "template.whatsapp_approval", object_type="template", object_id=template.id,
                     details={"content_sid": template.whatsapp_content_sid, "before": before, "after": status})
    session.flush()
    return _link(template)


def refresh_due_approvals(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """The sweep's share: re-check linked templates not checked for ``REFRESH_AFTER``; how many changed."""
    if settings.whatsapp_provider.lower() == "dev":
        return 0
    with system_session(engine) as session:
        due = list(session.scalars(select(MessageTemplate).where(
            MessageTemplate.whatsapp_content_sid.is_not(None), MessageTemplate.deleted_at.is_(None),
            or_(MessageTemplate.whatsapp_approval_checked_at.is_(None),
                MessageTemplate.whatsapp_approval_checked_at <= now - REFRESH_AFTER),
        ).order_by(MessageTemplate.whatsapp_approval_checked_at.is_not(None),
                   MessageTemplate.whatsapp_approval_checked_at).limit(REFRESH_PER_PASS)))
        changed = 0
        for template in due:
            try:
                account = _twilio_account(session, settings, template.tenant_id)
                status, reason = fetch_approval(settings, account, template.whatsapp_content_sid or "")
            except AppError as exc:
                log.warning("approval check of template %s failed: %s", template.id, exc)
                template.whatsapp_approval_checked_at = now  # try again after REFRESH_AFTER
                continue
            before = template.whatsapp_approval_status
            if _store(template, status, reason, now):
                changed += 1
                audit.record(session, None, "template.whatsapp_approval", object_type="template",
                             object_id=template.id, tenant_id=template.tenant_id, actor_name="worker",
                             details={"content_sid": template.whatsapp_content_sid, "before": before, "after": status})
    return changed


def ensure_sendable_in_bulk(session: TenantSession, template: MessageTemplate) -> None:
    """Refuse (ValidationError) a bulk send of a WhatsApp template that WhatsApp has not approved.

    Most patients of a bulk send are outside the 24-hour window, where WhatsApp delivers only an
    approved Content template. Call before anything is queued.
    """
    if Channel(template.channel) != Channel.WHATSAPP:
        return
    if not template.whatsapp_content_sid:
        raise ValidationError(f"The WhatsApp template '{template.code}' is not linked to an approved Content "
                              "template, so most patients would not receive it. Link one in the template editor.",
                              field="template_code")
    if template.whatsapp_approval_status != APPROVED:
        label = STATUS_LABELS.get(template.whatsapp_approval_status or "", "not checked yet")
        reason = f" ({template.whatsapp_approval_reason})" if template.whatsapp_approval_reason else ""
        raise ValidationError(f"The WhatsApp template '{template.code}' is not approved by WhatsApp: "
                              f"{label.lower()}{reason}. Refresh its status in the template editor.",
                              field="template_code")
