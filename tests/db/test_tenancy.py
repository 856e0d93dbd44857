"""Tenant A's context never reads or changes tenant B's rows, for every tenant-owned model."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from db.base import HasTenant
from db.enums import Channel, MessageStatus, OptOutSource, Role
from db.models import (
    TENANT_SCOPED_MODELS,
    ApiKey,
    Appointment,
    AppointmentReminder,
    AuditEvent,
    AuditRowImmutable,
    Base,
    BulkJob,
    BulkJobCount,
    ClinicCalendar,
    Conversation,
    DataExport,
    InboundMessage,
    Message,
    MessageLog,
    MessageRollup,
    MessageStatusRollup,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    PatientTag,
    PreferenceChange,
    ProviderCredential,
    ReminderRule,
    StaffSession,
    Tenant,
    User,
)
from db.session import session_factory, system_session, tenant_session
from db.tenancy import TenantScopeError

ALL_OWNED = (*TENANT_SCOPED_MODELS, AuditEvent)


def _key(model: type) -> Any:
    """The column naming one row (a job's counters have no id of their own: their job's)."""
    return model.bulk_job_id if model is BulkJobCount else model.id


def _graph(session: Session, tenant_id: uuid.UUID, tag: str) -> dict[type, uuid.UUID]:
    """One row of every tenant-owned model, linked the way the application links them."""
    now = dt.datetime.now(dt.UTC)
    user = User(tenant_id=tenant_id, username=f"user-{tag}", role=Role.ADMIN, password_hash="x")
    patient = Patient(tenant_id=tenant_id, name_en=f"Patient {tag}", phone_e164="+966501234567")
    session.add_all([user, patient])
    session.flush()
    template = MessageTemplate(tenant_id=tenant_id, code=f"code-{tag}", name="T", channel=Channel.SMS)
    session.add(template)
    session.flush()
    version = MessageTemplateVersion(tenant_id=tenant_id, template_id=template.id, version=1, body_en="Hi")
    job = BulkJob(tenant_id=tenant_id, channel=Channel.SMS, created_by_id=user.id)
    session.add_all([version, job])
    session.flush()
    message = Message(
        tenant_id=tenant_id, patient_id=patient.id, bulk_job_id=job.id, template_id=template.id,
        template_version_id=version.id, channel=Channel.SMS, recipient=patient.phone_e164 or "",
        body="Hi", status=MessageStatus.DELIVERED, price=Decimal("0.04"), segments=1,
    )
    session.add(message)
    session.flush()
    rows = [
        PatientTag(tenant_id=tenant_id, patient_id=patient.id, tag="vip"),
        Appointment(tenant_id=tenant_id, patient_id=patient.id, starts_at=now),
        NotificationPreference(tenant_id=tenant_id, patient_id=patient.id),
        PreferenceChange(tenant_id=tenant_id, patient_id=patient.id, field="sms_opt_in",
                         source=OptOutSource.STAFF, changed_by_id=user.id),
        MessageLog(tenant_id=tenant_id, message_id=message.id, event="status", to_status=MessageStatus.QUEUED),
        AuditEvent(tenant_id=tenant_id, actor_id=user.id, action="test.event"),
        ProviderCredential(tenant_id=tenant_id, provider="twilio", encrypted="x"),
        DataExport(tenant_id=tenant_id, requested_by_id=user.id),
        MessageRollup(tenant_id=tenant_id, hour=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), channel=Channel.SMS,
                      status=MessageStatus.SENT),
        MessageStatusRollup(tenant_id=tenant_id, hour=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), channel=Channel.SMS,
                            status=MessageStatus.SENT),
        StaffSession(tenant_id=tenant_id, user_id=user.id, role=Role.ADMIN, secret_hash=f"hash-{tag}",
                     idle_expires_at=now, expires_at=now),
        ApiKey(tenant_id=tenant_id, name="EHR", key_prefix="ck_x", key_hash=f"key-{tag}"),
        ClinicCalendar(tenant_id=tenant_id),
    ]
    session.add_all(rows)
    session.flush()
    rule = ReminderRule(tenant_id=tenant_id, name="48 h", channel=Channel.WHATSAPP, offset_minutes=2880,
                        template_id=template.id)
    conversation = Conversation(tenant_id=tenant_id, address=patient.phone_e164 or "", patient_id=patient.id)
    session.add_all([rule, conversation])
    session.flush()
    appointment = rows[1]
    later = [
        AppointmentReminder(tenant_id=tenant_id, appointment_id=appointment.id, rule_id=rule.id, due_at=now,
                            message_id=message.id),
        InboundMessage(tenant_id=tenant_id, conversation_id=conversation.id, patient_id=patient.id,
                       channel=Channel.WHATSAPP, from_address=conversation.address, body="نعم",
                       provider_message_id=f"SM-{tag}", appointment_id=appointment.id),
    ]
    session.add_all(later)
    session.flush()
    rows += [rule, conversation, *later]
    ids = {type(o): o.id for o in (user, patient, template, version, job, message, *rows)}
    ids[BulkJobCount] = job.id  # the job's counters, written by the database with its message
    assert set(ids) == set(ALL_OWNED)
    return ids


@pytest.fixture
def two_clinics(engine: Engine) -> tuple[uuid.UUID, uuid.UUID, dict, dict]:
    with system_session(engine) as session:
        a, b = Tenant(name="A", slug="a"), Tenant(name="B", slug="b")
        session.add_all([a, b])
        session.flush()
        return a.id, b.id, _graph(session, a.id, "a"), _graph(session, b.id, "b")


def test_every_model_with_a_tenant_is_scoped() -> None:
    owned = {m.class_ for m in Base.registry.mappers if issubclass(m.class_, HasTenant)}
    with_column = {m.class_ for m in Base.registry.mappers if "tenant_id" in m.columns}
    assert owned == with_column == set(ALL_OWNED)


@pytest.mark.parametrize("model", ALL_OWNED, ids=lambda m: m.__name__)
def test_reads_see_only_own_rows(engine: Engine, two_clinics, model: type) -> None:
    a, _b, rows_a, rows_b = two_clinics
    with tenant_session(engine, a) as session:
        seen = set(session.scalars(select(_key(model))))
        assert rows_a[model] in seen and rows_b[model] not in seen
        assert session.scalar(select(model).where(_key(model) == rows_b[model]).limit(1)) is None
        assert session.scalar(select(func.count()).select_from(model)) == len(seen)
        # a join through the tenant's own rows cannot reach the other clinic's either
        assert session.scalar(select(model).where(_key(model) == rows_b[model])) is None


@pytest.mark.parametrize("model", ALL_OWNED, ids=lambda m: m.__name__)
def test_bulk_update_and_delete_cannot_touch_other_tenant(engine: Engine, two_clinics, model: type) -> None:
    a, _b, _rows_a, rows_b = two_clinics
    if model is AuditEvent:  # insert-only: any ORM update or delete is refused outright
        with pytest.raises(AuditRowImmutable), tenant_session(engine, a) as session:
            session.execute(delete(model).where(_key(model) == rows_b[model]))
        return
    column = "created_at" if "created_at" in model.__table__.c else None
    with tenant_session(engine, a) as session:
        if column:
            stamp = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
            result = session.execute(
                update(model).where(_key(model) == rows_b[model]).values({column: stamp})
                .execution_options(synchronize_session=False)
            )
            assert result.rowcount == 0
        result = session.execute(
            delete(model).where(_key(model) == rows_b[model]).execution_options(synchronize_session=False)
        )
        assert result.rowcount == 0
    with system_session(engine) as session:
        assert session.scalar(select(model).where(_key(model) == rows_b[model]).limit(1)) is not None


def test_relationship_loads_are_scoped(engine: Engine, two_clinics) -> None:
    a, _b, rows_a, _rows_b = two_clinics
    with tenant_session(engine, a) as session:
        patient = session.get(Patient, rows_a[Patient])
        assert patient is not None and [t.tag for t in patient.tags] == ["vip"]


def test_tenant_rows_of_tenants_table(engine: Engine, two_clinics) -> None:
    a, b, _, _ = two_clinics
    with tenant_session(engine, a) as session:
        assert set(session.scalars(select(Tenant.id))) == {a}
        assert session.get(Tenant, b) is None


def test_cannot_insert_into_another_tenant(engine: Engine, two_clinics) -> None:
    a, b, _, _ = two_clinics
    with pytest.raises(TenantScopeError), tenant_session(engine, a) as session:
        session.add(Patient(tenant_id=b, name_en="Intruder"))
        session.flush()
    with system_session(engine) as session:
        assert session.scalar(select(Patient).where(Patient.name_en == "Intruder")) is None


def test_new_rows_are_stamped_with_the_session_tenant(engine: Engine, two_clinics) -> None:
    a, _, _, _ = two_clinics
    with tenant_session(engine, a) as session:
        patient = Patient(name_en="New")
        session.add(patient)
        session.flush()
        assert patient.tenant_id == a


def test_cannot_change_object_of_another_tenant(engine: Engine, two_clinics) -> None:
    a, _b, _, rows_b = two_clinics
    with system_session(engine) as session:
        foreign = session.get(Patient, rows_b[Patient])
        session.expunge(foreign)
    with pytest.raises(TenantScopeError), tenant_session(engine, a) as session:
        merged = session.merge(foreign, load=False)
        merged.name_en = "Changed"
        session.flush()
    with system_session(engine) as session:
        assert session.get(Patient, rows_b[Patient]).name_en == "Patient b"


def test_unbound_session_refuses_queries(engine: Engine) -> None:
    with session_factory(engine)() as session, pytest.raises(TenantScopeError):
        session.scalars(select(Patient)).all()
