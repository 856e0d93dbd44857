"""Staff management: admins only, clear refusals, and an audit row for every change."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import staff
from app.services.auth import LoginPolicy, PasswordChangeRequired, authenticate
from app.services.permissions import Actor
from db.enums import Role
from db.models import AuditEvent
from db.session import tenant_session
from tests.factories import DEFAULT_PASSWORD, make_tenant, make_user, user_row


@pytest.fixture
def clinic(engine: Engine):
    tenant = make_tenant(engine)
    return engine, tenant, make_user(engine, tenant, "boss", Role.ADMIN)


def _audit(engine: Engine, tenant) -> list[tuple[str, dict]]:
    with tenant_session(engine, tenant) as session:
        return [(e.action, e.details) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.created_at))]


def test_admin_adds_a_user_who_can_sign_in(clinic) -> None:
    engine, tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        member = staff.create_user(session, admin, username="Nora", password="nora-password-1",
                                   role="front_desk", display_name="Nora K")
    assert member.username == "nora" and member.role == Role.FRONT_DESK
    assert authenticate(engine, "nora", "nora-password-1", policy=LoginPolicy()).role == Role.FRONT_DESK
    assert ("staff.create", {"username": "nora", "role": "front_desk"}) in _audit(engine, tenant)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"username": "x"}, ValidationError, "3 to 64"),
        ({"username": "bad name"}, ValidationError, "username"),
        ({"password": "short"}, ValidationError, "at least 10"),
        ({"role": "owner"}, ValidationError, "Unknown role"),
        ({"username": "BOSS"}, ConflictError, "already taken"),
        ({"email": "not-an-email"}, ValidationError, "e-mail"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_saved(clinic, kwargs, error, match) -> None:
    engine, tenant, admin = clinic
    args = {"username": "newbie", "password": "long-enough-1", "role": "analyst", **kwargs}
    with pytest.raises(error, match=match), tenant_session(engine, tenant) as session:
        staff.create_user(session, admin, **args)
    with tenant_session(engine, tenant) as session:
        assert [m.username for m in staff.list_staff(session, admin)] == ["boss"]


def test_usernames_are_unique_across_clinics(clinic) -> None:
    engine, _tenant, _admin = clinic
    other = make_tenant(engine, "clinic-b")
    with pytest.raises(ConflictError), tenant_session(engine, other) as session:
        staff.create_user(session, Actor.system(other, name="command line"), username="boss",
                          password="long-enough-1", role="admin")


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_manage_staff(clinic, role) -> None:
    engine, tenant, _admin = clinic
    someone = make_user(engine, tenant, f"user-{role.value}", role)
    with tenant_session(engine, tenant) as session:
        with pytest.raises(PermissionDenied):
            staff.list_staff(session, someone)
        with pytest.raises(PermissionDenied):
            staff.create_user(session, someone, username="sneaky", password="long-enough-1", role="admin")
        with pytest.raises(PermissionDenied):
            staff.change_role(session, someone, someone.user_id, Role.ADMIN)


def test_change_role_deactivate_reset_and_unlock_are_audited(clinic) -> None:
    engine, tenant, admin = clinic
    bob = make_user(engine, tenant, "bob", Role.ANALYST)
    with tenant_session(engine, tenant) as session:
        assert staff.set_full_contact_access(session, admin, bob.user_id, True).can_view_full_contacts
        assert staff.change_role(session, admin, bob.user_id, "front_desk").role == Role.FRONT_DESK
        assert not staff.set_active(session, admin, bob.user_id, False).is_active
        assert staff.set_active(session, admin, bob.user_id, True).is_active
        staff.reset_password(session, admin, bob.user_id, "brand-new-password")
        staff.unlock(session, admin, bob.user_id)
    actions = [a for a, _ in _audit(engine, tenant)]
    for action in ("staff.contact_access", "staff.change_role", "staff.deactivate", "staff.activate",
                   "staff.reset_password", "staff.unlock"):
        assert action in actions
    with pytest.raises(PasswordChangeRequired):  # the reset password works, for choosing a new one
        authenticate(engine, "bob", "brand-new-password", policy=LoginPolicy())
    with pytest.raises(Exception, match="Wrong"):
        authenticate(engine, "bob", DEFAULT_PASSWORD, policy=LoginPolicy())


def test_the_last_admin_stays_an_admin(clinic) -> None:
    engine, tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ValidationError, match="at least one active admin"):
            staff.change_role(session, admin, admin.user_id, Role.ANALYST)
        with pytest.raises(ValidationError, match="your own account"):
            staff.set_active(session, admin, admin.user_id, False)


def test_cannot_manage_staff_of_another_clinic(clinic) -> None:
    engine, _tenant, admin = clinic
    other_tenant = make_tenant(engine, "clinic-b")
    stranger = make_user(engine, other_tenant, "stranger", Role.ANALYST)
    with tenant_session(engine, admin.tenant_id) as session:
        with pytest.raises(NotFoundError):
            staff.set_active(session, admin, stranger.user_id, False)
        assert "stranger" not in [m.username for m in staff.list_staff(session, admin)]


# --- which changes end the user's sessions (session_epoch) and ask for a new password ----------


def _epochs(engine: Engine, *usernames: str) -> list[int]:
    return [user_row(engine, name).session_epoch for name in usernames]


@pytest.mark.parametrize(
    "change,ends_sessions",
    [
        (lambda s, admin, user: staff.reset_password(s, admin, user.user_id, "brand-new-password"), True),
        (lambda s, admin, user: staff.set_active(s, admin, user.user_id, False), True),
        (lambda s, admin, user: staff.change_role(s, admin, user.user_id, Role.ANALYST), True),
        (lambda s, admin, user: staff.change_role(s, admin, user.user_id, Role.FRONT_DESK), False),  # same role
        (lambda s, admin, user: staff.unlock(s, admin, user.user_id), False),
        (lambda s, admin, user: staff.set_active(s, admin, user.user_id, True), False),  # already active
    ],
    ids=["reset", "deactivate", "role change", "same role", "unlock", "activate"],
)
def test_a_reset_deactivation_or_role_change_moves_the_epoch_of_that_user_only(
    clinic, change, ends_sessions: bool,
) -> None:  # type: ignore[no-untyped-def]
    engine, tenant, admin = clinic
    desk = make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    other = make_tenant(engine, "clinic-b")
    make_user(engine, other, "frontdesk-b", Role.FRONT_DESK)  # the same job in clinic B
    with tenant_session(engine, tenant) as session:
        change(session, admin, desk)
    assert _epochs(engine, "frontdesk", "boss", "frontdesk-b") == [1 if ends_sessions else 0, 0, 0]


def test_an_admins_reset_makes_the_user_choose_a_new_password_and_is_audited(clinic) -> None:
    engine, tenant, admin = clinic
    desk = make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    assert not user_row(engine, "frontdesk").must_change_password
    with tenant_session(engine, tenant) as session:
        staff.reset_password(session, admin, desk.user_id, "brand-new-password")
    assert user_row(engine, "frontdesk").must_change_password
    assert ("staff.reset_password", {"username": "frontdesk", "must_change_password": True}) in _audit(engine, tenant)


def test_an_admin_resetting_their_own_password_is_not_asked_again(clinic) -> None:
    engine, tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        staff.reset_password(session, admin, admin.user_id, "my-own-new-password")
    row = user_row(engine, "boss")
    assert not row.must_change_password and row.session_epoch == 1  # their sessions still end
    assert authenticate(engine, "boss", "my-own-new-password", policy=LoginPolicy()).session_epoch == 1
