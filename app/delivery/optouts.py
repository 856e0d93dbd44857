"""Recording opt-outs and opt-ins that come from patients or providers (STOP, 21610, 63014)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.enums import Channel, OptOutSource
from db.models import NotificationPreference, Patient, PreferenceChange
from db.types import utcnow


def _preference(session: Session, tenant_id: uuid.UUID, patient_id: uuid.UUID) -> NotificationPreference:
    pref = session.scalar(
        select(NotificationPreference).where(
            NotificationPreference.tenant_id == tenant_id, NotificationPreference.patient_id == patient_id
        )
    )
    if pref is None:
        pref = NotificationPreference(tenant_id=tenant_id, patient_id=patient_id)
        session.add(pref)
        session.flush()
    return pref


def set_channel_opt_in(
    session: Session, *, tenant_id: uuid.UUID, patient_id: uuid.UUID, channel: Channel, opted_in: bool,
    source: OptOutSource, reason: str = "", changed_by_id: uuid.UUID | None = None,
) -> bool:
    """Set one channel's opt-in for a patient and record the change; False when it was already so."""
    pref = _preference(session, tenant_id, patient_id)
    field = f"{Channel(channel).value}_opt_in"
    old = bool(getattr(pref, field))
    if old == opted_in:
        return False
    setattr(pref, field, opted_in)
    now = utcnow()
    if not opted_in:
        pref.opted_out_at = now
        pref.opt_out_source = source
    session.add(PreferenceChange(
        tenant_id=tenant_id, patient_id=patient_id, field=field, old_value=str(old).lower(),
        new_value=str(opted_in).lower(), source=source, reason=reason[:500], changed_by_id=changed_by_id,
        created_at=now,
    ))
    return True


def patients_with_phone(session: Session, phone_e164: str, tenant_id: uuid.UUID | None = None) -> list[Patient]:
    query = select(Patient).where(Patient.phone_e164 == phone_e164, Patient.deleted_at.is_(None))
    if tenant_id is not None:
        query = query.where(Patient.tenant_id == tenant_id)
    return list(session.scalars(query))
