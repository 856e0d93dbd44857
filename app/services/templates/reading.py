"""Reading a clinic's templates: the list with usage, one template with its versions, one saved
version, the difference between two versions, and what the template was used for.

Each use case checks ``VIEW_TEMPLATES`` and returns frozen dataclasses, never ORM objects. The
lookups ``_get``, ``_version_row`` and ``_detail`` are shared with ``editing`` and ``sending``
(they run after the caller's own role check).
"""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from app.errors import NotFoundError, ValidationError
from app.search_text import clean_search, contains
from app.services.permissions import Actor, Permission, authorize
from app.services.templates.checks import CONTENT_FIELDS, FIELD_LABELS, used_variables
from db.enums import Channel, MessageClass, Outcome, count_of, outcome_clause
from db.models import Message, MessageTemplate, MessageTemplateVersion, User
from db.tenancy import TenantSession

# -- plain data returned to pages ------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSummary:
    id: uuid.UUID
    code: str
    name: str
    channel: Channel
    message_class: MessageClass
    is_active: bool
    current_version: int
    updated_at: dt.datetime
    messages_sent: int
    delivery_rate: float | None  # delivered (or read) / finished (delivered, read, failed, undelivered)
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class VersionSummary:
    version: int
    note: str
    created_at: dt.datetime
    created_by: str  # username, "" when unknown


@dataclass(frozen=True)
class TemplateVersionInfo:
    template_id: uuid.UUID
    version: int
    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str
    note: str
    created_at: dt.datetime
    created_by: str


@dataclass(frozen=True)
class TemplateDetail:
    id: uuid.UUID
    code: str
    name: str
    description: str
    channel: Channel
    message_class: MessageClass
    is_active: bool
    current_version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str
    variables: tuple[str, ...]
    versions: tuple[VersionSummary, ...]


@dataclass(frozen=True)
class VersionUsage:
    version: int
    messages: int


@dataclass(frozen=True)
class TemplateUsage:
    template_id: uuid.UUID
    messages_sent: int
    delivered: int
    failed: int
    delivery_rate: float | None
    last_used_at: dt.datetime | None
    per_version: tuple[VersionUsage, ...]


# -- lookups shared by the use cases (after their role check) ------------------------------


def _get(session: TenantSession, template_id: uuid.UUID) -> MessageTemplate:
    template = session.scalar(select(MessageTemplate).where(
        MessageTemplate.id == template_id, MessageTemplate.deleted_at.is_(None)))
    if template is None:
        raise NotFoundError("That template does not exist in your clinic.")
    return template


def _version_row(session: TenantSession, template: MessageTemplate, version: int) -> MessageTemplateVersion:
    row = session.scalar(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id, MessageTemplateVersion.version == version))
    if row is None:
        raise NotFoundError(f"The template '{template.code}' has no version {version}.")
    return row


def _usernames(session: TenantSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u.username for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def _detail(session: TenantSession, template: MessageTemplate) -> TemplateDetail:
    session.flush()
    rows = list(session.scalars(select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id == template.id).order_by(MessageTemplateVersion.version)))
    names = _usernames(session, (r.created_by_id for r in rows))
    current = next((r for r in rows if r.version == template.current_version), None)
    if current is None:
        raise NotFoundError(f"The template '{template.code}' has no saved version.")
    used: set[str] = set()
    for source in (current.body_en, current.body_ar, current.subject_en, current.subject_ar):
        try:
            used |= used_variables(source)
        except ValidationError:
            pass
    return TemplateDetail(
        id=template.id, code=template.code, name=template.name, description=template.description or "",
        channel=Channel(template.channel), message_class=MessageClass(template.message_class),
        is_active=template.is_active, current_version=template.current_version,
        created_at=template.created_at, updated_at=template.updated_at,
        body_en=current.body_en, body_ar=current.body_ar, subject_en=current.subject_en,
        subject_ar=current.subject_ar, variables=tuple(sorted(used)),
        versions=tuple(VersionSummary(r.version, r.note, r.created_at, names.get(r.created_by_id, ""))
                       for r in rows),
    )


def _usage_columns() -> tuple[Any, ...]:
    """Messages sent (not "not sent"), delivered, failed, and the last use: ``db.enums.Outcome``."""
    not_sent = outcome_clause(Message.channel, Message.status, Outcome.NOT_SENT)
    sent = func.sum(case((not_sent, 0), else_=1))
    delivered = count_of(Message.channel, Message.status, Outcome.DELIVERED)
    failed = count_of(Message.channel, Message.status, Outcome.FAILED)
    last = func.max(case((not_sent, None), else_=Message.created_at))
    return sent, delivered, failed, last


def _rate(delivered: int, failed: int) -> float | None:
    return delivered / (delivered + failed) if delivered + failed else None


# -- the use cases ---------------------------------------------------------------------------


def list_templates(
    session: TenantSession, actor: Actor, *, channel: Channel | str | None = None,
    active: bool | None = None, search: str = "",
) -> list[TemplateSummary]:
    """The clinic's templates (not deleted), by code, with usage columns (test sends excluded)."""
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    query = select(MessageTemplate).where(MessageTemplate.deleted_at.is_(None))
    if channel:
        query = query.where(MessageTemplate.channel == Channel.parse(channel))
    if active is not None:
        query = query.where(MessageTemplate.is_active.is_(active))
    text = clean_search(search)
    if text:
        query = query.where(contains(MessageTemplate.code, text) | contains(MessageTemplate.name, text))
    templates = list(session.scalars(query.order_by(MessageTemplate.code)))
    usage: dict[uuid.UUID, tuple[int, int, int, dt.datetime | None]] = {}
    if templates:
        rows = session.execute(
            select(Message.template_id, *_usage_columns())
            .where(Message.template_id.in_([t.id for t in templates]), Message.is_test.is_(False))
            .group_by(Message.template_id)
        )
        usage = {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), r[4]) for r in rows}
    result = []
    for t in templates:
        sent, delivered, failed, last = usage.get(t.id, (0, 0, 0, None))
        result.append(TemplateSummary(
            id=t.id, code=t.code, name=t.name, channel=Channel(t.channel),
            message_class=MessageClass(t.message_class), is_active=t.is_active,
            current_version=t.current_version, updated_at=t.updated_at, messages_sent=sent,
            delivery_rate=_rate(delivered, failed), last_used_at=last,
        ))
    return result


def get_template(session: TenantSession, actor: Actor, template_id: uuid.UUID) -> TemplateDetail:
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    return _detail(session, _get(session, template_id))


def get_version(session: TenantSession, actor: Actor, template_id: uuid.UUID, version: int) -> TemplateVersionInfo:
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    row = _version_row(session, _get(session, template_id), version)
    names = _usernames(session, [row.created_by_id])
    return TemplateVersionInfo(
        template_id=row.template_id, version=row.version, body_en=row.body_en, body_ar=row.body_ar,
        subject_en=row.subject_en, subject_ar=row.subject_ar, note=row.note, created_at=row.created_at,
        created_by=names.get(row.created_by_id, "") if row.created_by_id else "",
    )


def diff_versions(session: TenantSession, actor: Actor, template_id: uuid.UUID, version_a: int,
                  version_b: int) -> str:
    """A readable unified diff, field by field, from ``version_a`` to ``version_b``."""
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    template = _get(session, template_id)
    a, b = _version_row(session, template, version_a), _version_row(session, template, version_b)
    parts = []
    for field in CONTENT_FIELDS:
        old, new = getattr(a, field), getattr(b, field)
        if old == new:
            continue
        label = FIELD_LABELS[field]
        lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="",
                                     fromfile=f"{label}, version {version_a}",
                                     tofile=f"{label}, version {version_b}")
        parts.append("\n".join(lines))
    if not parts:
        return f"No differences between version {version_a} and version {version_b}."
    return "\n\n".join(parts)


def template_usage(session: TenantSession, actor: Actor, template_id: uuid.UUID) -> TemplateUsage:
    """Messages sent with the template (test sends, cancelled and suppressed ones excluded)."""
    authorize(session, actor, Permission.VIEW_TEMPLATES)
    template = _get(session, template_id)
    live = (Message.template_id == template.id, Message.is_test.is_(False))
    sent, delivered, failed, last = session.execute(select(*_usage_columns()).where(*live)).one()
    per_version = session.execute(
        select(MessageTemplateVersion.version, func.count(Message.id))
        .join(MessageTemplateVersion, MessageTemplateVersion.id == Message.template_version_id)
        .where(*live, ~outcome_clause(Message.channel, Message.status, Outcome.NOT_SENT))
        .group_by(MessageTemplateVersion.version).order_by(MessageTemplateVersion.version)
    ).all()
    delivered, failed = int(delivered or 0), int(failed or 0)
    return TemplateUsage(
        template_id=template.id, messages_sent=int(sent or 0), delivered=delivered, failed=failed,
        delivery_rate=_rate(delivered, failed), last_used_at=last,
        per_version=tuple(VersionUsage(int(v), int(n)) for v, n in per_version),
    )
