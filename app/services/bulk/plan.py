"""One bulk send's recipients, one by one: language, variables, and whether (and why not) each is sent.

Shared by the wizard's dry run and the worker's expansion, so what the review promised is
what the expansion does. Opt-outs, consent and quiet hours come from ``app.delivery.policy``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import lazyload

from app.delivery.policy import decide
from app.services.bulk import audience as audiences
from app.services.message_content import choose_language, recipient_variables
from app.templating import template_variables
from db.enums import OPEN_APPOINTMENT_STATUSES, Channel, Language, MessageClass
from db.models import Appointment, NotificationPreference, Patient, Tenant
from db.tenancy import TenantSession

CHUNK = 1000
CLINIC_VARIABLES = frozenset({"clinic_name", "clinic_phone"})

# Why a recipient is skipped (the review's table groups by these)
OPTED_OUT = "opted out"
CHANNEL_DISABLED = "channel disabled"
NO_CONSENT = "no promotional consent"
INACTIVE = "patient inactive"
INVALID = "invalid number"
DUPLICATE = "duplicate"
MISSING_VARIABLE = "missing variable"
DEFERRED = "quiet hours (deferred)"


@dataclass(frozen=True)
class Content:
    channel: Channel
    message_class: MessageClass
    body_en: str
    body_ar: str
    subject_en: str = ""
    subject_ar: str = ""
    template_id: uuid.UUID | None = None
    template_version_id: uuid.UUID | None = None

    def source(self, language: Language) -> str:
        return self.body_ar if language == Language.AR else self.body_en

    @property
    def has_arabic(self) -> bool:
        return bool(self.body_ar.strip())

    def variables(self, language: Language) -> frozenset[str]:
        return template_variables(self.source(language))

    @property
    def per_recipient(self) -> bool:
        """True when the text differs by recipient (anything but the clinic's own name and phone)."""
        return bool((self.variables(Language.EN) | (self.variables(Language.AR) if self.has_arabic else
                                                     frozenset())) - CLINIC_VARIABLES)


@dataclass(frozen=True)
class Planned:
    row: int | None  # the row in an uploaded file; None for patients chosen by a query
    recipient: str
    patient_id: uuid.UUID | None
    language: Language
    values: dict[str, Any]
    skip: str | None = None  # one of the reasons above
    detail: str = ""  # the reason in words (for skipped or deferred)
    deferred: bool = False
    suppressed: bool = False  # a row is written with status "suppressed" (opt-out, no consent)


def _classify(preference: NotificationPreference | None, channel: Channel, reason: str) -> str:
    if "consent" in reason:
        return NO_CONSENT
    if "inactive" in reason:
        return INACTIVE
    if preference is not None and preference.opted_out_at is None:
        return CHANNEL_DISABLED
    return OPTED_OUT


def _appointments(session: TenantSession, tenant: Tenant, ids: list[uuid.UUID],
                  now: dt.datetime) -> dict[uuid.UUID, Appointment]:
    rows = session.scalars(select(Appointment).where(
        Appointment.tenant_id == tenant.id, Appointment.patient_id.in_(ids), Appointment.starts_at >= now,
        Appointment.status.in_(OPEN_APPOINTMENT_STATUSES)).order_by(Appointment.starts_at))
    first: dict[uuid.UUID, Appointment] = {}
    for appointment in rows:
        first.setdefault(appointment.patient_id, appointment)
    return first


def _decide(tenant: Tenant, content: Content, patient: Patient | None,
            preference: NotificationPreference | None, now: dt.datetime) -> tuple[str | None, str, bool]:
    decision = decide(channel=content.channel, patient=patient, preference=preference, urgent=False,
                      message_class=content.message_class, timezone=tenant.timezone, now=now,
                      promotional_window=tenant.promotional_window)
    if decision.suppress_reason:
        return _classify(preference, content.channel, decision.suppress_reason), decision.suppress_reason, False
    return None, decision.defer_reason or "", decision.defer_until is not None


def _plan_one(tenant: Tenant, content: Content, *, row: int | None, recipient: str, patient: Patient | None,
              preference: NotificationPreference | None, appointment: Appointment | None, now: dt.datetime,
              name: str = "", language: str = "", extra: Mapping[str, Any] | None = None) -> Planned:
    requested = Language(language) if language else None
    choice = choose_language(preference=preference, patient=patient, tenant=tenant,
                             has_arabic_body=content.has_arabic, requested=requested)
    values = recipient_variables(tenant, patient, choice.language, appointment, name=name)
    values.update({k: v for k, v in (extra or {}).items() if str(v).strip()})
    skip, detail, deferred = _decide(tenant, content, patient, preference, now)
    base = dict(row=row, recipient=recipient, patient_id=patient.id if patient else None,
                language=choice.language, values=values)
    if skip is not None and skip != INACTIVE:
        return Planned(**base, skip=skip, detail=detail, suppressed=True)
    if skip is not None:
        return Planned(**base, skip=skip, detail=detail)
    missing = sorted(content.variables(choice.language) - {k for k, v in values.items() if str(v).strip()})
    if missing:
        return Planned(**base, skip=MISSING_VARIABLE, detail="no value for " + ", ".join(missing))
    return Planned(**base, detail=detail, deferred=deferred)


def _rows_with_preferences(session: TenantSession, query: Any) -> Iterator[list[tuple[Patient, Any]]]:
    """``query`` (patients joined to their preferences) streamed as (patient, preference) chunks."""
    stream = session.execute(
        query.add_columns(NotificationPreference)
        .options(lazyload(Patient.tags)).order_by(Patient.id).execution_options(yield_per=CHUNK))
    for partition in stream.partitions(CHUNK):
        yield [(row[0], row[1]) for row in partition]


def plan(session: TenantSession, tenant: Tenant, audience: Mapping[str, Any], content: Content,
         now: dt.datetime, *, where: Any = None) -> Iterator[Planned]:
    """Every recipient of ``audience`` with its language, variables and outcome, streamed in chunks
    (patients only those matching ``where``, if given)."""
    if audience.get("kind") == "list":
        yield from _plan_list(session, tenant, audience, content, now)
        return
    query = audiences.with_preferences(audiences.patients_query(audience, content.channel, tenant))
    if where is not None:
        query = query.where(where)
    column = audiences.contact_column(content.channel).key
    for chunk in _rows_with_preferences(session, query):
        appointments = _appointments(session, tenant, [p.id for p, _ in chunk], now)
        for patient, preference in chunk:
            yield _plan_one(tenant, content, row=None, recipient=str(getattr(patient, column)), patient=patient,
                            preference=preference, appointment=appointments.get(patient.id), now=now)


def _plan_list(session: TenantSession, tenant: Tenant, audience: Mapping[str, Any], content: Content,
               now: dt.datetime) -> Iterator[Planned]:
    recipients = list(audience.get("recipients") or [])
    column = audiences.contact_column(content.channel)
    for start in range(0, len(recipients), CHUNK):
        chunk = recipients[start:start + CHUNK]
        known: dict[str, tuple[Patient, NotificationPreference | None]] = {}
        rows = session.execute(
            audiences.with_preferences(select(Patient, NotificationPreference))
            .where(Patient.tenant_id == tenant.id, column.in_([r["recipient"] for r in chunk]),
                   Patient.deleted_at.is_(None))
            .options(lazyload(Patient.tags)))
        for patient, preference in rows:
            known.setdefault(str(getattr(patient, column.key)), (patient, preference))
        appointments = _appointments(session, tenant, [p.id for p, _ in known.values()], now)
        for item in chunk:
            patient, preference = known.get(item["recipient"], (None, None))
            yield _plan_one(tenant, content, row=item.get("row"), recipient=item["recipient"], patient=patient,
                            preference=preference, appointment=appointments.get(patient.id) if patient else None,
                            now=now, name=item.get("name") or "", language=item.get("language") or "",
                            extra=item.get("variables") or {})


# --- the same plan counted in groups, for the review of a big audience ------------------------


@dataclass(frozen=True)
class PlannedGroup:
    """``count`` recipients with the same outcome; ``planned`` stands for each (its recipient is blank)."""

    planned: Planned
    count: int
    contacts: Callable[[int], list[str]]  # the first n recipients' contacts (patient order)


def _same_for_everyone_like_them(channel: Channel) -> Any:
    """Patients whose outcome for a text that names no one depends only on their language settings and
    promotional consent: no preferences, or preferences that allow the channel and set no quiet hours."""
    opt_in = getattr(NotificationPreference, f"{channel.value}_opt_in")
    return or_(NotificationPreference.id.is_(None),
               and_(opt_in.is_(True), or_(NotificationPreference.quiet_hours_start.is_(None),
                                          NotificationPreference.quiet_hours_end.is_(None))))


def _is(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def plan_grouped(session: TenantSession, tenant: Tenant, audience: Mapping[str, Any], content: Content,
                 now: dt.datetime) -> tuple[list[PlannedGroup], Iterator[Planned]]:
    """The plan as groups counted by SQL plus the recipients planned one by one (``plan``).

    For a patient audience and a text that names no one, most patients' outcome depends only on
    their language settings and consent: those are counted per group (one ``GROUP BY``) and one
    stand-in per group is planned by the same ``_plan_one``; the rest (opted out, quiet hours) are
    planned one by one. The review of 1,000,000 patients then reads a few groups instead of
    building 1,000,000 patient objects. A list, or a text that names the recipient, is planned
    one by one.
    """
    if audience.get("kind") == "list" or content.per_recipient:
        return [], plan(session, tenant, audience, content, now)
    alike = _same_for_everyone_like_them(content.channel)
    has_preference = NotificationPreference.id.is_not(None)
    keys = (has_preference, NotificationPreference.language, Patient.language,
            NotificationPreference.promotional_consent)
    base = audiences.with_preferences(audiences.patients_query(audience, content.channel, tenant)).where(
        alike)
    column = audiences.contact_column(content.channel)
    groups = []
    for with_preference, preferred, language, consent, count in session.execute(
            base.with_only_columns(*keys, func.count()).group_by(*keys)):
        patient = Patient(language=language, is_active=True, name_en="", name_ar="")
        preference = NotificationPreference(
            language=preferred, promotional_consent=consent, **{f"{content.channel.value}_opt_in": True},
        ) if with_preference else None
        planned = _plan_one(tenant, content, row=None, recipient="", patient=patient, preference=preference,
                            appointment=None, now=now)
        members = base.where(_is(has_preference, with_preference), _is(NotificationPreference.language, preferred),
                             _is(Patient.language, language), _is(NotificationPreference.promotional_consent, consent))

        def contacts(n: int, members: Any = members) -> list[str]:
            return [str(c) for c in session.scalars(members.with_only_columns(column).order_by(Patient.id).limit(n))]

        groups.append(PlannedGroup(planned, count, contacts))
    return groups, plan(session, tenant, audience, content, now, where=~alike)
