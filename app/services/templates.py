"""Message templates of one clinic: list, read, create, edit, duplicate, (de)activate, delete,
versions (view, compare, restore), live checks for the editor (with a preview), test send and usage.

Every function takes a tenant-bound session and the signed-in ``Actor``, checks the role
(``VIEW_TEMPLATES`` to read, ``MANAGE_TEMPLATES`` to change), audits every change and returns
frozen dataclasses, never ORM objects. Every save of a template's content makes a new immutable
version; messages record the version they used.

Validation refuses a save as a whole (nothing is half-saved) with a ``ValidationError`` whose
``field`` names the offending form field: ``code``, ``name``, ``channel``, ``message_class``,
``body_en``, ``body_ar``, ``subject_en`` or ``subject_ar``. A promotional template may not use
the patient's clinical details (``CLINICAL_VARIABLES``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError

from app import pricing
from app.config import Settings, get_settings
from app.errors import ConflictError, NotFoundError, ValidationError
from app.reply_lint import reply_warnings
from app.search_text import clean_search, contains
from app.segments import count_segments
from app.services import audit, messaging
from app.services.message_content import CHANNEL_BODY_LIMITS, STANDARD_VARIABLES
from app.services.messaging import SendResult
from app.services.permissions import Actor, Permission, authorize
from app.services.whatsapp_templates import (  # the bulk wizard's check, re-exported here
    ensure_sendable_in_bulk as ensure_sendable_in_bulk,
)
from app.templating import TemplateRenderError, compile_template, convert_single_braces
from db.enums import Channel, Language, MessageClass, Outcome, count_of, outcome_clause
from db.models import Message, MessageTemplate, MessageTemplateVersion, User
from db.tenancy import TenantSession
from db.types import utcnow

CODE_PATTERN = re.compile(r"^[a-z0-9_-]{2,64}$")
MAX_NAME_CHARS = 200
MAX_SUBJECT_CHARS = 300
MAX_NOTE_CHARS = 500
CUSTOM_SAMPLE_VALUE = "sample"

_JINJA_CONSTRUCT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_CONTENT_FIELDS = ("subject_en", "body_en", "subject_ar", "body_ar")
# Variables that carry a patient's clinical details, refused in promotional templates (PDPL:
# health data is sensitive; an advertising or awareness message must not reveal anyone's care).
# Clinical: what the patient has or had done — diagnosis or condition, tests and their results,
# medication, procedures — and who or which service treats them (``doctor_name`` and
# ``department`` of the next appointment: "Oncology" or a psychiatrist's name discloses the
# condition). Not clinical: the patient's name and the appointment's date and time (personal
# data, but they say nothing about the care), and the clinic's own name and phone. Names are
# compared case-insensitively, so a custom ``Diagnosis`` is refused too.
CLINICAL_VARIABLES = frozenset({
    "diagnosis", "condition", "test_name", "lab_test", "lab_result", "result", "test_result",
    "medication", "prescription", "procedure", "treatment", "doctor_name", "department",
})
_FIELD_LABELS = {
    "subject_en": "English subject", "body_en": "English text",
    "subject_ar": "Arabic subject", "body_ar": "Arabic text",
}


def class_rules(message_class: MessageClass | str, channel: Channel | str,
                settings: Settings | None = None) -> list[str]:
    """What choosing this class means for the messages, in the editor's words."""
    settings = settings or get_settings()
    start, end = settings.promotional_window_start, settings.promotional_window_end
    if MessageClass(message_class) == MessageClass.SERVICE:
        return ["Sent at any time of day; a patient's own quiet hours delay it unless it is marked urgent.",
                "No promotional consent is needed; opt-outs of the channel still apply."]
    rules = [f"Sent only between {start} and {end} clinic time; outside the window messages wait (urgent does not "
             "bypass it).",
             "Only patients who gave promotional consent receive it; the others are skipped.",
             "Clinical details are refused in the text: " + ", ".join(sorted(CLINICAL_VARIABLES)) + "."]
    if Channel(channel) == Channel.SMS:
        rules.append("SMS to Saudi numbers goes out under the clinic's sender ending in -AD (Settings); without "
                     "one it is refused before sending.")
    return rules


# -- plain data returned to pages ------------------------------------------------------------


@dataclass(frozen=True)
class VariableInfo:
    name: str
    meaning: str
    example_en: str
    example_ar: str


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
class UnknownVariable:
    name: str
    suggestion: str | None

    @property
    def message(self) -> str:
        hint = f" Did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"Unknown variable '{self.name}'.{hint}"


@dataclass(frozen=True)
class BodyCheck:
    """What the live editor shows under a text box."""

    channel: Channel
    language: Language
    characters: int  # of the preview when it renders, else of the text as typed
    limit: int
    over_limit: bool
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    per_segment: int
    non_gsm_chars: tuple[str, ...]
    stray_characters_hint: str | None
    estimated_cost: float  # per message, in ``currency``
    currency: str
    variables: tuple[str, ...]
    unknown_variables: tuple[UnknownVariable, ...]
    preview: str
    error: str | None  # the syntax or render problem, in plain words
    # How the text asks patients to reply, when that fails (app.reply_lint): warnings, not refusals.
    reply_warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unknown_variables and not self.over_limit


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


# -- variables and sample data ---------------------------------------------------------------


def variable_reference() -> list[VariableInfo]:
    """The documented variables (name, meaning, English and Arabic example) for the editor."""
    return [VariableInfo(name, meaning, *_split_example(example))
            for name, (meaning, example) in STANDARD_VARIABLES.items()]


def variable_reference_markdown() -> str:
    """The table in docs/template-variables.md, generated from ``STANDARD_VARIABLES``."""
    lines = ["| variable | meaning | example (English) | example (Arabic) |", "|---|---|---|---|"]
    for info in variable_reference():
        lines.append(f"| `{info.name}` | {info.meaning} | {info.example_en} | {info.example_ar} |")
    return "\n".join(lines) + "\n"


def _split_example(example: str) -> tuple[str, str]:
    english, _, arabic = example.partition(" / ")
    return english, arabic or english


def sample_values(language: Language | str = Language.EN, custom_variables: Iterable[str] = (),
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sample data for previews: the documented examples in ``language``, then ``overrides``."""
    arabic = Language(language) == Language.AR
    values: dict[str, Any] = {
        info.name: info.example_ar if arabic else info.example_en for info in variable_reference()
    }
    values.update({name: CUSTOM_SAMPLE_VALUE for name in custom_variables if name not in values})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return values


def _used_variables(source: str) -> frozenset[str]:
    return compile_template(source).variables


def _unknown(used: Iterable[str], known: Iterable[str]) -> tuple[UnknownVariable, ...]:
    known_list = sorted(set(known))
    return tuple(
        UnknownVariable(name, next(iter(difflib.get_close_matches(name, known_list, n=1, cutoff=0.6)), None))
        for name in sorted(set(used) - set(known_list))
    )


def _check_braces(source: str) -> None:
    rest = _JINJA_CONSTRUCT.sub("", convert_single_braces(source))
    if "{" in rest or "}" in rest:
        brace = "{" if "{" in rest else "}"
        raise TemplateRenderError(
            f"The text has a '{brace}' without its partner. Write a variable as {{{{ patient_name }}}} "
            "or {patient_name}."
        )


# -- the live editor: pure checks -------------------------------------------------------------


def check_body(
    channel: Channel | str,
    body: str,
    *,
    language: Language | str = Language.EN,
    custom_variables: Iterable[str] = (),
    sample_values_override: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> BodyCheck:
    """Everything the editor shows while typing: segments, length, cost, variables, preview.

    Never raises for a bad body: problems come back in ``error`` and ``unknown_variables``.
    """
    channel = Channel.parse(channel)
    language = Language(language)
    settings = settings or get_settings()
    custom = tuple(custom_variables)
    error: str | None = None
    used: frozenset[str] = frozenset()
    unknown: tuple[UnknownVariable, ...] = ()
    preview = ""
    try:
        used = _used_variables(body)
        _check_braces(body)
        unknown = _unknown(used, [*STANDARD_VARIABLES, *custom])
        values = sample_values(language, [*custom, *(u.name for u in unknown)], sample_values_override)
        preview = compile_template(body).render(values)
    except ValidationError as exc:
        error = str(exc)
    counted = preview if error is None else body
    info = count_segments(counted)
    limit = CHANNEL_BODY_LIMITS[channel]
    return BodyCheck(
        channel=channel, language=language, characters=len(counted), limit=limit,
        over_limit=len(counted) > limit, encoding=info.encoding, segments=info.segments,
        per_segment=info.per_segment, non_gsm_chars=info.non_gsm_chars,
        stray_characters_hint=info.stray_characters_hint,
        estimated_cost=pricing.estimate(channel, segments=pricing.segments(channel, counted),
                                        messages=1 if counted.strip() else 0, settings=settings),
        currency=settings.price_currency,
        variables=tuple(sorted(used)), unknown_variables=unknown, preview=preview, error=error,
        reply_warnings=tuple(reply_warnings(body, channel, language=language)),
    )


def _validate_text(field: str, source: str, channel: Channel, language: Language,
                   known: Iterable[str], *, limit: int) -> None:
    """Refuse a body or subject that does not compile, uses unknown variables, or is too long."""
    label = _FIELD_LABELS[field]
    try:
        used = _used_variables(source)
        _check_braces(source)
    except ValidationError as exc:
        raise ValidationError(f"{label}: {exc}", field=field) from None
    unknown = _unknown(used, known)
    try:  # render with sample data first: a sandbox escape is reported as such, not as a name
        rendered = compile_template(source).render(
            sample_values(language, [*known, *(u.name for u in unknown)]))
    except ValidationError as exc:
        raise ValidationError(f"{label}: {exc}", field=field) from None
    if unknown:
        raise ValidationError(f"{label}: " + " ".join(u.message for u in unknown), field=field)
    if len(rendered) > limit:
        raise ValidationError(
            f"{label} is {len(rendered):,} characters with sample data; {channel.label} allows at most "
            f"{limit:,}.", field=field,
        )


@dataclass(frozen=True)
class _Content:
    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str


def _refuse_clinical(content: _Content) -> None:
    """A promotional template may not use ``CLINICAL_VARIABLES`` (checked after the text compiles)."""
    for field in ("body_en", "body_ar", "subject_en", "subject_ar"):
        source = getattr(content, field)
        if not source.strip():
            continue
        clinical = sorted(name for name in _used_variables(source) if name.lower() in CLINICAL_VARIABLES)
        if clinical:
            names = ", ".join(clinical)
            braces = " and ".join(f"{{{{ {name} }}}}" for name in clinical)
            raise ValidationError(
                f"Promotional messages may not include clinical details ({names}). Remove {braces} "
                "or make this a service template.", field=field,
            )


def _validate_content(content: _Content, channel: Channel, known: Iterable[str],
                      message_class: MessageClass = MessageClass.SERVICE) -> None:
    known = tuple(known)
    if not content.body_en.strip():
        raise ValidationError("The English text is empty.", field="body_en")
    if channel == Channel.EMAIL and not content.subject_en.strip():
        raise ValidationError("An e-mail needs an English subject.", field="subject_en")
    limit = CHANNEL_BODY_LIMITS[channel]
    _validate_text("body_en", content.body_en, channel, Language.EN, known, limit=limit)
    if content.body_ar.strip():
        _validate_text("body_ar", content.body_ar, channel, Language.AR, known, limit=limit)
    for field, language in (("subject_en", Language.EN), ("subject_ar", Language.AR)):
        subject = getattr(content, field)
        if subject.strip():
            if channel != Channel.EMAIL:
                raise ValidationError(f"Only e-mail has a subject; {channel.label} does not.", field=field)
            _validate_text(field, subject, channel, language, known, limit=MAX_SUBJECT_CHARS)
    if message_class == MessageClass.PROMOTIONAL:
        _refuse_clinical(content)


# -- reading ----------------------------------------------------------------------------------


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
            used |= _used_variables(source)
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
    for field in _CONTENT_FIELDS:
        old, new = getattr(a, field), getattr(b, field)
        if old == new:
            continue
        label = _FIELD_LABELS[field]
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


# -- changing ---------------------------------------------------------------------------------


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


def _add_version(session: TenantSession, actor: Actor, template: MessageTemplate, content: _Content,
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


def _content(body_en: str, body_ar: str, subject_en: str, subject_ar: str) -> _Content:
    return _Content(body_en=(body_en or "").strip(), body_ar=(body_ar or "").strip(),
                    subject_en=(subject_en or "").strip(), subject_ar=(subject_ar or "").strip())


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
    _validate_content(content, channel, [*STANDARD_VARIABLES, *custom_variables], message_class)
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
            previously_used |= _used_variables(source)
        except ValidationError:
            pass
    channel = Channel(template.channel)
    _validate_content(content, channel, [*STANDARD_VARIABLES, *custom_variables, *previously_used], new_class)
    changed = [f for f in _CONTENT_FIELDS if getattr(content, f) != getattr(current, f)]
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
    content = _Content(current.body_en, current.body_ar, current.subject_en, current.subject_ar)
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
    content = _Content(old.body_en, old.body_ar, old.subject_en, old.subject_ar)
    template.updated_at = utcnow()
    new_version = _add_version(session, actor, template, content, f"restored from version {version}")
    audit.record(session, actor, "template.restore", object_type="template", object_id=template.id,
                 details={"code": template.code, "from_version": version, "version": new_version})
    return _detail(session, template)


# -- test send --------------------------------------------------------------------------------


def test_send(
    session: TenantSession, actor: Actor, template_id: uuid.UUID, *, recipient: str,
    language: Language | str | None = None, sample_values_override: Mapping[str, Any] | None = None,
) -> SendResult:
    """Send the template's current version to ``recipient`` (a number or e-mail the staff member
    types) through the real delivery pipeline (``messaging.send``), marked ``is_test`` so
    statistics leave it out; its delivery job is enqueued after the session commits.

    The template must be active (like any send). The clinic's name and phone come from the
    clinic unless ``sample_values_override`` gives others; other variables get sample data.
    """
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    current = _version_row(session, template, template.current_version)
    code, channel = template.code, Channel(template.channel)
    requested = Language(language) if language else None
    used: set[str] = set()
    for source in (current.body_en, current.body_ar, current.subject_en, current.subject_ar):
        used |= _used_variables(source)
    sample_language = requested or Language.EN
    values = sample_values(sample_language, used, sample_values_override)
    # The clinic's own name and phone come from the clinic, unless the staff member typed others.
    given = dict(sample_values_override or {})
    variables = {k: v for k, v in values.items()
                 if k in used and (k not in ("clinic_name", "clinic_phone") or k in given)}
    return messaging.send(session, actor, channel, recipient=recipient, template_code=code, variables=variables,
                          language=requested, is_test=True)


test_send.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, whatever imports it
