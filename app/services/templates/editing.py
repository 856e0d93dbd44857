"""Changing a clinic's templates: create, update, duplicate, (de)activate, delete, restore a version.

Each use case checks ``MANAGE_TEMPLATES``, audits the change and returns the template's
``TemplateDetail``. Every save of a template's content makes a new immutable version (history is
never rewritten); messages record the version they used. Validation refuses a save as a whole
(nothing is half-saved) with a ``ValidationError`` whose ``field`` names the offending form
field: ``code``, ``name``, ``channel``, ``message_class``, ``body_en``, ``body_ar``,
``subject_en`` or ``subject_ar``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.errors import ConflictError, ValidationError
from app.services import audit
from app.services.message_content import STANDARD_VARIABLES
from app.services.permissions import Actor, Permission, authorize
from app.services.templates.checks import CONTENT_FIELDS, Content, used_variables, validate_content
from app.services.templates.reading import TemplateDetail, _detail, _get, _version_row
from db.enums import Channel, MessageClass
from db.models import MessageTemplate, MessageTemplateVersion
from db.tenancy import TenantSession
from db.types import utcnow

CODE_PATTERN = re.compile(r"^[a-z0-9_-]{2,64}$")
MAX_NAME_CHARS = 200
MAX_NOTE_CHARS = 500


# -- the form's fields and the rows a save writes ---------------------------------------------


def _parse_code(code: str) -> str:
    value = (code or "").strip().lower()
    if not CODE_PATTERN.match(value):
        raise ValidationError(
            "A code is 2 to 64 characters: lower-case letters, digits, underscore or dash "
            "(e.g. appointment_reminder).", field="code")
    return value


def _parse_name(name: str) -> str:
    value = (name or "").strip()
    if not value:
        raise ValidationError("Give the template a name.", field="name")
    if len(value) > MAX_NAME_CHARS:
        raise ValidationError(f"A name is at most {MAX_NAME_CHARS} characters.", field="name")
    return value


def _parse_channel(channel: Channel | str) -> Channel:
    try:
        return Channel.parse(channel)
    except ValueError as exc:
        raise ValidationError(str(exc), field="channel") from None


def _parse_class(value: MessageClass | str) -> MessageClass:
    try:
        return MessageClass(str(value).strip().lower())
    except ValueError:
        raise ValidationError("The message class is 'service' or 'promotional'.", field="message_class") from None


def _check_code_free(session: TenantSession, code: str) -> None:
    taken = session.scalar(select(func.count()).select_from(MessageTemplate).where(
        MessageTemplate.code == code, MessageTemplate.deleted_at.is_(None)))
    if taken:
        raise ConflictError(f"Your clinic already has a template with the code '{code}'.")


def _flush_new(session: TenantSession, code: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(f"Your clinic already has a template with the code '{code}'.") from None


def _add_version(session: TenantSession, actor: Actor, template: MessageTemplate, content: Content,
                 note: str) -> int:
    version = (template.current_version or 0) + 1  # a new template starts at 0
    session.add(MessageTemplateVersion(
        tenant_id=template.tenant_id, template_id=template.id, version=version, body_en=content.body_en,
        body_ar=content.body_ar, subject_en=content.subject_en, subject_ar=content.subject_ar,
        note=note[:MAX_NOTE_CHARS], created_by_id=actor.user_id,
    ))
    template.current_version = version
    session.flush()
    return version


def _content(body_en: str, body_ar: str, subject_en: str, subject_ar: str) -> Content:
    return Content(body_en=(body_en or "").strip(), body_ar=(body_ar or "").strip(),
                    subject_en=(subject_en or "").strip(), subject_ar=(subject_ar or "").strip())


# -- the use cases ---------------------------------------------------------------------------


def create_template(
    session: TenantSession, actor: Actor, *, code: str, name: str, channel: Channel | str, body_en: str,
    body_ar: str = "", subject_en: str = "", subject_ar: str = "", description: str = "",
    message_class: MessageClass | str = MessageClass.SERVICE, custom_variables: Iterable[str] = (),
    note: str = "",
) -> TemplateDetail:
    """A new template with its version 1. ``custom_variables`` are names a send will supply
    besides the documented ones (e.g. a bulk send's ``offer``)."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    code = _parse_code(code)
    name = _parse_name(name)
    channel = _parse_channel(channel)
    message_class = _parse_class(message_class)
    content = _content(body_en, body_ar, subject_en, subject_ar)
    validate_content(content, channel, [*STANDARD_VARIABLES, *custom_variables], message_class)
    _check_code_free(session, code)
    template = MessageTemplate(
        tenant_id=session.tenant_id, code=code, name=name, description=(description or "").strip(),
        channel=channel, message_class=message_class, is_active=True, current_version=0,
    )
    session.add(template)
    _flush_new(session, code)
    version = _add_version(session, actor, template, content, note or "created")
    audit.record(session, actor, "template.create", object_type="template", object_id=template.id,
                 details={"code": code, "channel": channel.value, "version": version})
    return _detail(session, template)


def update_template(
    session: TenantSession, actor: Actor, template_id: uuid.UUID, *, name: str | None = None,
    description: str | None = None, message_class: MessageClass | str | None = None,
    body_en: str | None = None, body_ar: str | None = None, subject_en: str | None = None,
    subject_ar: str | None = None, note: str = "", custom_variables: Iterable[str] = (),
) -> TemplateDetail:
    """Save changes; ``None`` leaves a field as it is. Every save makes a new version.

    Variables the current version already uses stay accepted (they were checked when saved).
    """
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    current = _version_row(session, template, template.current_version)
    new_name = _parse_name(name) if name is not None else template.name
    new_class = _parse_class(message_class) if message_class is not None else MessageClass(template.message_class)
    content = _content(
        current.body_en if body_en is None else body_en, current.body_ar if body_ar is None else body_ar,
        current.subject_en if subject_en is None else subject_en,
        current.subject_ar if subject_ar is None else subject_ar,
    )
    previously_used: set[str] = set()
    for source in (current.body_en, current.body_ar, current.subject_en, current.subject_ar):
        try:
            previously_used |= used_variables(source)
        except ValidationError:
            pass
    channel = Channel(template.channel)
    validate_content(content, channel, [*STANDARD_VARIABLES, *custom_variables, *previously_used], new_class)
    changed = [f for f in CONTENT_FIELDS if getattr(content, f) != getattr(current, f)]
    if new_name != template.name:
        changed.append("name")
    if description is not None and description.strip() != (template.description or ""):
        template.description = description.strip()
        changed.append("description")
    if new_class != template.message_class:
        changed.append("message_class")
    template.name, template.message_class = new_name, new_class
    template.updated_at = utcnow()
    version = _add_version(session, actor, template, content, note.strip() or "edited")
    audit.record(session, actor, "template.update", object_type="template", object_id=template.id,
                 details={"code": template.code, "version": version, "changed": changed})
    return _detail(session, template)


def duplicate_template(session: TenantSession, actor: Actor, template_id: uuid.UUID, *, new_code: str,
                       new_name: str) -> TemplateDetail:
    """A copy of the current version under a new code (the copy's version 1, active)."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    source = _get(session, template_id)
    current = _version_row(session, source, source.current_version)
    code = _parse_code(new_code)
    name = _parse_name(new_name)
    _check_code_free(session, code)
    copy = MessageTemplate(
        tenant_id=session.tenant_id, code=code, name=name, description=source.description,
        channel=source.channel, message_class=source.message_class, is_active=True, current_version=0,
        fallback_channel=source.fallback_channel,
    )
    session.add(copy)
    _flush_new(session, code)
    content = Content(current.body_en, current.body_ar, current.subject_en, current.subject_ar)
    _add_version(session, actor, copy, content, f"copied from {source.code} version {source.current_version}")
    audit.record(session, actor, "template.duplicate", object_type="template", object_id=copy.id,
                 details={"code": code, "from_code": source.code, "from_version": source.current_version})
    return _detail(session, copy)


def set_active(session: TenantSession, actor: Actor, template_id: uuid.UUID, active: bool) -> TemplateDetail:
    """Only active templates can be sent."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    template.is_active = bool(active)
    template.updated_at = utcnow()
    audit.record(session, actor, "template.activate" if active else "template.deactivate",
                 object_type="template", object_id=template.id, details={"code": template.code})
    return _detail(session, template)


def delete_template(session: TenantSession, actor: Actor, template_id: uuid.UUID) -> None:
    """Soft delete: hidden everywhere, kept for the messages that used it; its code can be reused."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    template.deleted_at = utcnow()
    template.is_active = False
    audit.record(session, actor, "template.delete", object_type="template", object_id=template.id,
                 details={"code": template.code})
    session.flush()


def restore_version(session: TenantSession, actor: Actor, template_id: uuid.UUID, version: int) -> TemplateDetail:
    """Make a new version with the content of ``version`` (history is never rewritten)."""
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    old = _version_row(session, template, version)
    content = Content(old.body_en, old.body_ar, old.subject_en, old.subject_ar)
    template.updated_at = utcnow()
    new_version = _add_version(session, actor, template, content, f"restored from version {version}")
    audit.record(session, actor, "template.restore", object_type="template", object_id=template.id,
                 details={"code": template.code, "from_version": version, "version": new_version})
    return _detail(session, template)
