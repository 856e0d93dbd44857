"""The audit log: filters, keyset paging, readable details, CSV export (audited), insert-only rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from app.csv_safe import read_csv
from app.errors import PermissionDenied, ValidationError
from app.services import audit, passwords
from app.services.audit import AuditFilter
from app.services.permissions import Actor
from db.enums import Channel, Role
from db.models import (
    ApiKey,
    Appointment,
    AuditEvent,
    AuditRowImmutable,
    ClinicCalendar,
    Conversation,
    Patient,
    ReminderRule,
)
from db.session import system_session, tenant_session
from tests.factories import make_message, make_patient, make_tenant, make_user, owner_connection, system_connection
from tests.neighbours import neighbour_id

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _bypassing_the_guard(engine: Engine, statement) -> None:  # type: ignore[no-untyped-def]
    """Test set-up only: a raw statement on audit_events with the PostgreSQL trigger off (as the owner)."""
    with owner_connection(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_insert_only"))
        conn.execute(statement)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_insert_only"))


def _add(engine: Engine, actor: Actor | None, tenant: uuid.UUID, action: str, minutes: int, **kwargs) -> None:
    """One event at a known time (T0 + minutes)."""
    with tenant_session(engine, tenant) as session:
        audit.record(session, actor, action, **kwargs)
        session.flush()
        event_id = session.scalars(select(AuditEvent.id).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.created_at.desc()).limit(1)).one()
    table = AuditEvent.__table__
    _bypassing_the_guard(engine, table.update().where(table.c.id == event_id)
                         .values(created_at=T0 + dt.timedelta(minutes=minutes)))


@pytest.fixture
def clinic(engine: Engine):
    tenant = make_tenant(engine, "clinic-a")
    admin = make_user(engine, tenant, "amira", Role.ADMIN)
    desk = make_user(engine, tenant, "fatima", Role.FRONT_DESK)
    _bypassing_the_guard(engine, AuditEvent.__table__.delete())  # start from an empty log
    _add(engine, admin, tenant, "template.create", 0, object_type="template", object_id="t-1",
         details={"code": "reminder", "version": 1})
    _add(engine, desk, tenant, "message.retry", 10, object_type="message", object_id="m-1",
         details={"new_message_id": "m-2"})
    _add(engine, admin, tenant, "staff.change_role", 20, object_type="user", object_id="u-1",
         details={"username": "omar", "from": "analyst", "to": "front_desk"})
    _add(engine, None, tenant, "auth.login_failed", 30, details={"username": "ghost", "reason": "unknown user"},
         actor_name="ghost")
    return engine, tenant, admin, desk


def _actions(page) -> list[str]:
    return [e.action for e in page.entries]


def test_newest_first_with_readable_labels_and_details(clinic) -> None:
    engine, tenant, admin, _ = clinic
    with tenant_session(engine, tenant) as session:
        page = audit.search(session, admin)
    assert _actions(page) == ["auth.login_failed", "staff.change_role", "message.retry", "template.create"]
    role_change = page.entries[1]
    assert role_change.action_label == "Role changed"
    assert role_change.details_text == "username: omar · from: analyst · to: front_desk"
    assert role_change.actor_name == "amira" and page.next_cursor is None


@pytest.mark.parametrize(("make_filter", "expected"), [
    (lambda admin, desk: AuditFilter(actor_id=desk.user_id), ["message.retry"]),
    (lambda admin, desk: AuditFilter(actor_id=admin.user_id), ["staff.change_role", "template.create"]),
    (lambda admin, desk: AuditFilter(actions=("template.create", "auth.login_failed")),
     ["auth.login_failed", "template.create"]),
    (lambda admin, desk: AuditFilter(object_type="message"), ["message.retry"]),
    (lambda admin, desk: AuditFilter(object_type="user", object_id=" u-1 "), ["staff.change_role"]),
    (lambda admin, desk: AuditFilter(since=T0 + dt.timedelta(minutes=10), until=T0 + dt.timedelta(minutes=20)),
     ["staff.change_role", "message.retry"]),
    (lambda admin, desk: AuditFilter(object_id="nothing-like-this"), []),
])
def test_filters(clinic, make_filter, expected) -> None:
    engine, tenant, admin, desk = clinic
    with tenant_session(engine, tenant) as session:
        assert _actions(audit.search(session, admin, make_filter(admin, desk))) == expected


def test_keyset_pages_cover_everything_once_even_with_equal_times(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "amira")
    with tenant_session(engine, tenant) as session:
        for i in range(7):
            session.add(AuditEvent(actor_name="x", action="test.same_time", object_id=str(i), created_at=T0))
    seen: list[str] = []
    cursor = None
    pages = 0
    with tenant_session(engine, tenant) as session:
        while True:
            page = audit.search(session, admin, AuditFilter(actions=("test.same_time",)), cursor=cursor, limit=3)
            seen += [e.object_id for e in page.entries]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert sorted(seen) == [str(i) for i in range(7)] and pages == 3


def test_bad_filters_are_clear_errors(clinic) -> None:
    engine, tenant, admin, _ = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ValidationError, match="after its end"):
            audit.search(session, admin, AuditFilter(since=T0, until=T0 - dt.timedelta(days=1)))
        with pytest.raises(ValidationError, match="time zone"):
            audit.search(session, admin, AuditFilter(since=dt.datetime(2026, 1, 1)))
        with pytest.raises(ValidationError, match="between 1 and"):
            audit.search(session, admin, limit=0)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_read_or_export_the_log(clinic, role: Role) -> None:
    engine, tenant, _, _ = clinic
    other = make_user(engine, tenant, f"someone-{role.value}".replace("_", "-"), role)
    with tenant_session(engine, tenant) as session:
        for call in (audit.search, audit.choices, audit.export_csv):
            with pytest.raises(PermissionDenied):
                call(session, other)


def test_choices_list_staff_actions_and_object_types(clinic) -> None:
    engine, tenant, admin, desk = clinic
    with tenant_session(engine, tenant) as session:
        options = audit.choices(session, admin)
    assert options.users[desk.user_id] == "fatima (fatima)"
    assert {"template.create", "auth.login_failed", "audit.export"} <= set(options.actions)
    assert options.object_types == ["message", "template", "user"]


def test_export_is_a_safe_csv_and_is_itself_audited(clinic) -> None:
    engine, tenant, admin, _ = clinic
    _add(engine, admin, tenant, "template.update", 40, object_type="template", object_id="=HYPERLINK(\"x\")",
         details={"changed": ["body_en"]})
    with tenant_session(engine, tenant) as session:
        data = audit.export_csv(session, admin, AuditFilter(object_type="template"))
    assert data.startswith("\ufeff".encode())
    rows = read_csv(data)
    assert rows[0] == list(audit.CSV_HEADER)
    assert [r[2] for r in rows[1:]] == ["template.update", "template.create"]
    assert rows[1][4] == "'=HYPERLINK(\"x\")"  # neutralised
    assert rows[1][5] == "changed: body_en"
    with tenant_session(engine, tenant) as session:
        latest = audit.search(session, admin, limit=1).entries[0]
    assert latest.action == "audit.export" and latest.actor_id == admin.user_id
    assert latest.details == {"rows": 2, "filters": {"object_type": "template"}}


def test_a_clinic_never_sees_another_clinics_events(clinic) -> None:
    engine, _, _, _ = clinic
    other_admin = make_user(engine, make_tenant(engine, "clinic-b"), "bilal")
    with tenant_session(engine, other_admin.tenant_id) as session:
        page = audit.search(session, other_admin)
        options = audit.choices(session, other_admin)
    assert {e.action for e in page.entries} <= {"tenant.create", "staff.create"}
    assert {e.actor_name for e in page.entries} <= {"system", "command line"}
    assert set(options.users) == {other_admin.user_id}


def test_the_orm_refuses_to_change_or_delete_audit_events(clinic) -> None:
    engine, tenant, _, _ = clinic
    with pytest.raises(AuditRowImmutable), tenant_session(engine, tenant) as session:
        session.scalars(select(AuditEvent).limit(1)).one().action = "tampered"
        session.flush()
    with pytest.raises(AuditRowImmutable), tenant_session(engine, tenant) as session:
        session.delete(session.scalars(select(AuditEvent).limit(1)).one())
        session.flush()
    with pytest.raises(AuditRowImmutable), system_session(engine) as session:
        session.execute(update(AuditEvent).values(action="tampered"))
    with pytest.raises(AuditRowImmutable), system_session(engine) as session:
        session.execute(delete(AuditEvent))
    with system_session(engine) as session:
        assert "tampered" not in set(session.scalars(select(AuditEvent.action)))
        assert session.scalar(select(AuditEvent.id).limit(1)) is not None


def test_postgresql_refuses_changes_from_any_client(pg_engine: Engine) -> None:
    tenant = make_tenant(pg_engine)
    make_user(pg_engine, tenant, "amira")
    for statement in ("UPDATE audit_events SET action = 'tampered'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="insert-only"), system_connection(pg_engine) as conn:
            conn.execute(text(statement))
    with system_connection(pg_engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() >= 1


def test_each_entry_names_its_object_in_words_and_only_from_its_own_clinic(clinic) -> None:
    """The Object column reads "Template reminder", "Patient Sara A.", not a UUID; an id of the
    neighbouring clinic's patient (same name, same number) is never looked up there."""
    engine, tenant, admin, _ = clinic
    patient = make_patient(engine, tenant, name_en="Sara Al-Qahtani", phone="+966501234567")
    message = make_message(engine, tenant, recipient="+966501234567", patient_id=patient)
    with tenant_session(engine, neighbour_id(engine)) as session:
        neighbours_patient = session.scalars(select(Patient.id)).first()
    _add(engine, admin, tenant, "patient.preferences", 40, object_type="patient", object_id=patient)
    _add(engine, admin, tenant, "message.retry", 41, object_type="message", object_id=message)
    _add(engine, admin, tenant, "staff.unlock", 42, object_type="user", object_id=admin.user_id)
    _add(engine, admin, tenant, "test.neighbour", 43, object_type="patient", object_id=neighbours_patient)
    _add(engine, admin, tenant, "settings.credentials_cleared", 44, object_type="provider", object_id="twilio")

    with tenant_session(engine, tenant) as session:
        labels: dict[str, str] = {}
        for entry in audit.search(session, admin).entries:  # newest first: the events added here
            labels.setdefault(entry.action, entry.object_label)

    assert labels["patient.preferences"] == "Patient Sara A."
    assert labels["message.retry"].startswith("Message to +966") and "1234567" not in labels["message.retry"]
    assert labels["staff.unlock"] == "Staff member amira"
    assert labels["test.neighbour"] == f"Patient {str(neighbours_patient)[:8]}"  # not the neighbour's name
    assert labels["settings.credentials_cleared"] == "Provider twilio"
    assert labels["auth.login_failed"] == ""
    assert audit.object_type_label("bulk_job") == "Bulk send"


def test_the_objects_of_issue_20_are_named_in_words_not_by_an_id(clinic) -> None:
    """A reminder rule and an API key by their names, an appointment and an inbox thread by their
    patient (masked) or, for a number no patient has, the masked number; the clinic's one calendar
    needs no id. The neighbouring clinic's rows (same names, same numbers) are never read."""
    engine, tenant, admin, _ = clinic
    patient = make_patient(engine, tenant, name_en="Sara Ali", phone="+966501234567")
    now = dt.datetime.now(dt.UTC)
    with tenant_session(engine, tenant) as session:
        rule = ReminderRule(name="SMS 3 h before", channel=Channel.SMS, offset_minutes=180)
        key = ApiKey(name="Clinic HIS", key_prefix="ck_1234", key_hash="0" * 64)
        appointment = Appointment(patient_id=patient, starts_at=now + dt.timedelta(days=1))
        thread = Conversation(address="+966501234567", patient_id=patient)
        stranger = Conversation(address="+966559876543")
        calendar = ClinicCalendar()
        session.add_all([rule, key, appointment, thread, stranger, calendar])
        session.flush()
        ids = {name: row.id for name, row in [("rule", rule), ("key", key), ("appointment", appointment),
                                              ("thread", thread), ("stranger", stranger), ("calendar", calendar)]}
    with tenant_session(engine, neighbour_id(engine)) as session:  # same name and number next door
        neighbours_appointment = session.scalars(select(Appointment.id)).first()
    _add(engine, admin, tenant, "reminder_rule.update", 40, object_type="reminder_rule", object_id=ids["rule"])
    _add(engine, admin, tenant, "api_key.create", 41, object_type="api_key", object_id=ids["key"])
    _add(engine, admin, tenant, "appointment.status", 42, object_type="appointment", object_id=ids["appointment"])
    _add(engine, admin, tenant, "inbox.assign", 43, object_type="conversation", object_id=ids["thread"])
    _add(engine, admin, tenant, "inbox.done", 44, object_type="conversation", object_id=ids["stranger"])
    _add(engine, admin, tenant, "reminder_calendar.update", 45, object_type="clinic_calendar",
         object_id=ids["calendar"])
    _add(engine, admin, tenant, "test.neighbour", 46, object_type="appointment", object_id=neighbours_appointment)

    with tenant_session(engine, tenant) as session:
        labels = {entry.action: entry.object_label for entry in audit.search(session, admin).entries}

    assert labels["reminder_rule.update"] == "Reminder rule 'SMS 3 h before'"
    assert labels["api_key.create"] == "API key 'Clinic HIS'"
    assert labels["appointment.status"] == "Appointment of Sara A."
    assert labels["inbox.assign"] == "Inbox thread with Sara A."
    assert labels["inbox.done"].startswith("Inbox thread with +966") and "9876543" not in labels["inbox.done"]
    assert labels["reminder_calendar.update"] == "Reminder calendar"
    assert labels["test.neighbour"] == f"Appointment {str(neighbours_appointment)[:8]}"  # not the neighbour's patient
