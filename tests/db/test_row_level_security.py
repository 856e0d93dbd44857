"""The database's own wall between clinics (PostgreSQL row-level security, migration 0009).

The tests connect as the app role, as production does: a query that forgets its clinic condition
still sees one clinic, and nothing at all when no clinic is set.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from db.models import Base, Patient
from db.session import SYSTEM, scoped_connection, system_session, tenant_session
from tests.factories import make_patient, make_tenant
from tests.neighbours import neighbour_id

CLINIC_TABLES = [*sorted(t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c), "tenants"]


def test_the_app_role_is_neither_owner_nor_allowed_to_bypass(pg_engine: Engine) -> None:
    with pg_engine.connect() as connection:
        user, superuser, bypass = connection.execute(text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        owners = set(connection.scalars(text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")))
    assert user == "clinic_app" and not superuser and not bypass
    assert user not in owners


def test_every_clinic_table_has_its_policy_enabled_and_forced(pg_engine: Engine) -> None:
    with pg_engine.connect() as connection:
        rows = dict((name, (enabled, forced)) for name, enabled, forced in connection.execute(text(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(:names)"),
            {"names": CLINIC_TABLES}))
        policies = set(connection.scalars(text("SELECT tablename FROM pg_policies WHERE schemaname = 'public'")))
    assert set(rows) == set(CLINIC_TABLES)
    assert {name for name, flags in rows.items() if flags != (True, True)} == set()
    assert policies >= set(CLINIC_TABLES)


def test_a_connection_with_no_clinic_sees_nothing(pg_engine: Engine) -> None:
    make_patient(pg_engine, make_tenant(pg_engine, "clinic-a"))
    with pg_engine.connect() as connection:  # forgot to enter a clinic
        for table in CLINIC_TABLES:
            assert connection.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table


def test_a_query_that_forgets_its_condition_sees_only_the_current_clinic(pg_engine: Engine) -> None:
    a, b = make_tenant(pg_engine, "clinic-a"), make_tenant(pg_engine, "clinic-b")
    mine = make_patient(pg_engine, a)  # the same number and name in both clinics
    make_patient(pg_engine, b)
    with tenant_session(pg_engine, a) as session:
        ids = set(session.scalars(text("SELECT id FROM patients WHERE phone_e164 = '+966501234567'")))
        clinics = set(session.scalars(text("SELECT id FROM tenants")))
    assert ids == {mine} and clinics == {a}
    with scoped_connection(pg_engine, a) as connection:
        assert connection.scalar(text("SELECT count(DISTINCT tenant_id) FROM messages")) in (0, 1)
        assert connection.scalar(text("SELECT count(*) FROM patients")) == 1


def test_writing_another_clinics_row_is_refused_by_the_database(pg_engine: Engine) -> None:
    a, b = make_tenant(pg_engine, "clinic-a"), make_tenant(pg_engine, "clinic-b")
    theirs = make_patient(pg_engine, b)
    with pytest.raises(DBAPIError, match="row-level security"), scoped_connection(pg_engine, a) as connection:
        connection.execute(text("INSERT INTO patients (id, tenant_id, name_en, name_ar, language, is_active, "
                                "created_at, updated_at) VALUES (:id, :b, 'x', 'x', 'en', true, now(), now())"),
                           {"id": uuid.uuid4(), "b": b})
    with scoped_connection(pg_engine, a) as connection:  # an update or delete of theirs touches nothing
        assert connection.execute(text("UPDATE patients SET name_en = 'changed' WHERE id = :id"),
                                  {"id": theirs}).rowcount == 0
        assert connection.execute(text("DELETE FROM patients WHERE id = :id"), {"id": theirs}).rowcount == 0
    with tenant_session(pg_engine, b) as session:
        patient = session.get(Patient, theirs)
        assert patient is not None and patient.name_en == "Sara Ali"


def test_only_the_system_entry_sees_across_clinics(pg_engine: Engine) -> None:
    a, b = make_tenant(pg_engine, "clinic-a"), make_tenant(pg_engine, "clinic-b")
    make_patient(pg_engine, a)
    make_patient(pg_engine, b)
    with system_session(pg_engine) as session:
        clinics = set(session.scalars(text("SELECT DISTINCT tenant_id FROM patients")))
    assert clinics == {a, b, neighbour_id(pg_engine)}
    with scoped_connection(pg_engine, SYSTEM) as connection:
        assert connection.scalar(text("SELECT current_user")) == "clinic_system"
    with pg_engine.connect() as connection:  # the role lasted one transaction only
        assert connection.scalar(text("SELECT current_user")) == "clinic_app"
