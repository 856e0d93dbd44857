"""API keys for the appointments API: shown once, stored as a hash, one clinic each, refused at
once when revoked, admins only. Two clinics whose admins and keys' names look alike, on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select, update

from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import api_keys, passwords
from app.services.permissions import Actor
from db.enums import Role
from db.models import ApiKey, AuditEvent, Tenant
from db.session import system_session
from db.types import utcnow
from tests.factories import call, make_tenant, make_user


@dataclasses.dataclass
class Clinics:
    engine: Engine
    admin: Actor
    admin_b: Actor  # the other clinic's admin
    desk: Actor
    analyst: Actor


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for the admins these tests make: they are about keys, not hashing."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def clinics(engine: Engine) -> Clinics:
    a = make_tenant(engine, "clinic-a", "Al Noor Clinic")
    b = make_tenant(engine, "clinic-b", "Al Noor Clinic")
    return Clinics(engine, make_user(engine, a, "amira"), make_user(engine, b, "amira-b"),
                   make_user(engine, a, "fatima", Role.FRONT_DESK), make_user(engine, a, "omar", Role.ANALYST))


def _rows(engine: Engine) -> list[ApiKey]:
    with system_session(engine) as session:
        rows = list(session.scalars(select(ApiKey)))
        session.expunge_all()
        return rows


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with system_session(engine) as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        session.expunge_all()
        return rows


def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(clinics: Clinics) -> None:
    view, key = call(clinics.engine, clinics.admin, api_keys.create, "  Clinic   HIS ")
    assert key.startswith("ck_") and len(key) > 40
    assert (view.name, view.prefix, view.created_by, view.is_revoked) == ("Clinic HIS", key[:11], "amira", False)
    [row] = _rows(clinics.engine)
    assert key not in (row.key_hash, row.key_prefix, row.name) and len(row.key_hash) == 64
    [event] = _events(clinics.engine, "api_key.create")
    assert key not in str(event.details) and event.details == {"name": "Clinic HIS", "prefix": view.prefix}
    assert (event.actor_id, event.tenant_id) == (clinics.admin.user_id, clinics.admin.tenant_id)
    assert [k.id for k in call(clinics.engine, clinics.admin, api_keys.list_keys)] == [view.id]


def test_a_key_names_its_own_clinic_only(clinics: Clinics) -> None:
    _, key_a = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    _, key_b = call(clinics.engine, clinics.admin_b, api_keys.create, "Clinic HIS")  # the same name next door
    found_a = api_keys.authenticate(clinics.engine, key_a)
    found_b = api_keys.authenticate(clinics.engine, key_b)
    assert found_a is not None and found_b is not None
    assert (found_a.tenant_id, found_b.tenant_id) == (clinics.admin.tenant_id, clinics.admin_b.tenant_id)
    assert found_a.actor().tenant_id == clinics.admin.tenant_id
    assert found_a.actor().username == f"API key {key_a[:11]} (Clinic HIS)"
    assert [k.name for k in call(clinics.engine, clinics.admin, api_keys.list_keys)] == ["Clinic HIS"]
    assert {k.prefix for k in call(clinics.engine, clinics.admin_b, api_keys.list_keys)} == {key_b[:11]}


@pytest.mark.parametrize("presented", [None, "", "ck_", "ck_" + "x" * 43, "Bearer ck_x", "sk_live_123",
                                       "ck_" + "a" * 500, "ck_\x00' OR 1=1 --"])
def test_anything_but_a_live_key_is_nobody(clinics: Clinics, presented: str | None) -> None:
    call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    assert api_keys.authenticate(clinics.engine, presented) is None


def test_a_revoked_key_is_refused_at_once_and_the_other_clinic_cannot_revoke_it(clinics: Clinics) -> None:
    view, key = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    with pytest.raises(NotFoundError):
        call(clinics.engine, clinics.admin_b, api_keys.revoke, view.id)
    assert api_keys.authenticate(clinics.engine, key) is not None
    revoked = call(clinics.engine, clinics.admin, api_keys.revoke, view.id)
    assert revoked.is_revoked and revoked.revoked_by == "amira"
    assert api_keys.authenticate(clinics.engine, key) is None
    again = call(clinics.engine, clinics.admin, api_keys.revoke, view.id)  # nothing more happens
    assert again.revoked_at == revoked.revoked_at
    assert len(_events(clinics.engine, "api_key.revoke")) == 1


def test_a_deactivated_clinic_keys_stop_working(clinics: Clinics) -> None:
    _, key = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    with system_session(clinics.engine) as session:
        session.execute(update(Tenant).where(Tenant.id == clinics.admin.tenant_id).values(is_active=False))
    assert api_keys.authenticate(clinics.engine, key) is None


def test_use_is_noted_at_most_once_a_minute(clinics: Clinics) -> None:
    _, key = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    start = utcnow()
    api_keys.authenticate(clinics.engine, key, now=start)
    api_keys.authenticate(clinics.engine, key, now=start + dt.timedelta(seconds=30))
    assert _rows(clinics.engine)[0].last_used_at == start
    later = start + dt.timedelta(seconds=61)
    api_keys.authenticate(clinics.engine, key, now=later)
    assert _rows(clinics.engine)[0].last_used_at == later


def test_names_are_checked_and_a_live_name_is_not_given_twice(clinics: Clinics) -> None:
    for bad in ("", "   ", "x" * 101, "HIS\u202e", "HIS\nnext"):
        with pytest.raises(ValidationError):
            call(clinics.engine, clinics.admin, api_keys.create, bad)
    view, _ = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    with pytest.raises(ConflictError):
        call(clinics.engine, clinics.admin, api_keys.create, "clinic his")
    call(clinics.engine, clinics.admin, api_keys.revoke, view.id)
    call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")  # a revoked key's name is free again
    keys = call(clinics.engine, clinics.admin, api_keys.list_keys)
    assert [k.is_revoked for k in keys] == [False, True]  # live keys first
    assert len(_rows(clinics.engine)) == 2


@pytest.mark.parametrize("role", ["desk", "analyst"])
def test_only_admins_manage_keys(clinics: Clinics, role: str) -> None:
    view, _ = call(clinics.engine, clinics.admin, api_keys.create, "Clinic HIS")
    who = getattr(clinics, role)
    for fn, args in ((api_keys.create, ("Mine",)), (api_keys.list_keys, ()), (api_keys.revoke, (view.id,))):
        with pytest.raises(PermissionDenied):
            call(clinics.engine, who, fn, *args)
    assert [k.is_revoked for k in call(clinics.engine, clinics.admin, api_keys.list_keys)] == [False]
