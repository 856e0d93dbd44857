"""Who a bulk send goes to: all active patients, patients by tags, patients with an appointment in
a date range, or a custom list (pasted or uploaded).

An audience is plain JSON (stored on the bulk job as its definition and audited as is):

``{"kind": "all"}``
``{"kind": "tags", "any_of": [...], "all_of": [...], "exclude": [...]}``
``{"kind": "appointments", "from": "2026-12-01", "to": "2026-12-01"}``  (clinic dates, inclusive)
``{"kind": "list", "recipients": [{"row": 2, "recipient": "+9665...", "name": "", "language": "",
"variables": {...}}, ...]}``

For the first three kinds ``patients_query`` is one SELECT of the matching patients that have a
contact for the channel, usable both row by row and inside ``INSERT ... SELECT``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, and_, exists, func, select

from app.errors import ValidationError
from db.enums import OPEN_APPOINTMENT_STATUSES, Channel
from db.models import Appointment, NotificationPreference, Patient, PatientTag, Tenant
from db.tenancy import TenantSession

KINDS = ("all", "tags", "appointments", "list")
KIND_LABELS = {
    "all": "All active patients",
    "tags": "Patients by tags",
    "appointments": "Patients with an appointment in a date range",
    "list": "A custom list (paste or upload)",
}


def contact_column(channel: Channel) -> Any:
    return Patient.email if Channel(channel) == Channel.EMAIL else Patient.phone_e164


def _tags(values: Any) -> list[str]:
    return sorted({str(v).strip() for v in (values or []) if str(v).strip()})


def _date(value: Any, label: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"The {label} date is not a date.", field="audience") from None


def validate(audience: Mapping[str, Any]) -> dict[str, Any]:
    """A clean copy of ``audience``; refuses an unknown kind or an incomplete definition."""
    kind = audience.get("kind")
    if kind not in KINDS:
        raise ValidationError("Choose who the message goes to.", field="audience")
    if kind == "all":
        return {"kind": "all"}
    if kind == "tags":
        clean = {"kind": "tags", "any_of": _tags(audience.get("any_of")), "all_of": _tags(audience.get("all_of")),
                 "exclude": _tags(audience.get("exclude"))}
        if not clean["any_of"] and not clean["all_of"]:
            raise ValidationError("Choose at least one tag to include.", field="audience")
        return clean
    if kind == "appointments":
        start, end = _date(audience.get("from"), "first"), _date(audience.get("to"), "last")
        if end < start:
            raise ValidationError("The last date is before the first date.", field="audience")
        return {"kind": "appointments", "from": start.isoformat(), "to": end.isoformat()}
    recipients = list(audience.get("recipients") or [])
    if not recipients:
        raise ValidationError("The list has no recipient that can be sent to.", field="audience")
    return {"kind": "list", "recipients": recipients}


def describe(audience: Mapping[str, Any]) -> str:
    """One line a clerk reads in the jobs list and the audit log."""
    kind = audience.get("kind")
    if kind == "tags":
        parts = []
        if audience.get("any_of"):
            parts.append("any of " + ", ".join(audience["any_of"]))
        if audience.get("all_of"):
            parts.append("all of " + ", ".join(audience["all_of"]))
        if audience.get("exclude"):
            parts.append("except " + ", ".join(audience["exclude"]))
        return "Tags: " + "; ".join(parts)
    if kind == "appointments":
        return f"Appointments {audience.get('from')} to {audience.get('to')}"
    if kind == "list":
        return f"Custom list of {len(audience.get('recipients') or []):,}"
    return KIND_LABELS.get(str(kind), str(kind))


def audit_definition(audience: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as audited: a list is recorded by its size, not by the numbers on it."""
    if audience.get("kind") == "list":
        return {"kind": "list", "size": len(audience.get("recipients") or [])}
    return dict(audience)


def _has_tag(tag: str) -> Any:
    return exists().where(PatientTag.patient_id == Patient.id, PatientTag.tag == tag)


def patients_query(audience: Mapping[str, Any], channel: Channel, tenant: Tenant) -> Select[Any]:
    """``SELECT patients.*`` of the audience in ``tenant``: active, not deleted, with a contact for
    ``channel``. The clinic condition is part of the query itself, so it holds in ``INSERT ... SELECT``
    and on any connection, not only in a tenant session."""
    kind = audience["kind"]
    query = select(Patient).where(
        Patient.tenant_id == tenant.id, Patient.is_active.is_(True), Patient.deleted_at.is_(None),
        contact_column(channel).is_not(None), contact_column(channel) != "",
    )
    if kind == "tags":
        any_of, all_of, exclude = audience.get("any_of") or [], audience.get("all_of") or [], audience.get(
            "exclude") or []
        if any_of:
            query = query.where(exists().where(PatientTag.patient_id == Patient.id, PatientTag.tag.in_(any_of)))
        for tag in all_of:
            query = query.where(_has_tag(tag))
        if exclude:
            query = query.where(~exists().where(PatientTag.patient_id == Patient.id, PatientTag.tag.in_(exclude)))
    elif kind == "appointments":
        zone = zoneinfo.ZoneInfo(tenant.timezone)
        start = dt.datetime.combine(_date(audience["from"], "first"), dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(_date(audience["to"], "last") + dt.timedelta(days=1), dt.time(0),
                                  tzinfo=zone).astimezone(dt.UTC)
        query = query.where(exists().where(and_(
            Appointment.patient_id == Patient.id, Appointment.tenant_id == tenant.id,
            Appointment.starts_at >= start, Appointment.starts_at < end,
            Appointment.status.in_(OPEN_APPOINTMENT_STATUSES))))
    elif kind == "list":
        raise ValueError("a custom list is not a patient query")
    return query


def with_preferences(query: Select[Any]) -> Select[Any]:
    """``query`` of patients joined to their notification preferences (none: NULL columns)."""
    return query.outerjoin(NotificationPreference, and_(NotificationPreference.patient_id == Patient.id,
                                                        NotificationPreference.tenant_id == Patient.tenant_id))


def clinic_tags(session: TenantSession) -> list[str]:
    """Every tag used on the clinic's patients, for the tag pickers."""
    return list(session.scalars(select(PatientTag.tag).group_by(PatientTag.tag).order_by(PatientTag.tag)))


def count(session: TenantSession, audience: Mapping[str, Any], channel: Channel, tenant: Tenant) -> int:
    if audience.get("kind") == "list":
        return len(audience.get("recipients") or [])
    query = patients_query(audience, channel, tenant).with_only_columns(func.count(Patient.id))
    return int(session.scalar(query) or 0)
