"""Sign-in: hashing, wrong input, lockout, deactivation, idle timeout, audit of every outcome."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from app.errors import AuthenticationError, ValidationError
from app.services import auth, staff
from app.services.auth import LoginPolicy, authenticate
from app.services.passwords import hash_password, verify_password
from db.enums import Role
from db.models import AuditEvent
from db.session import system_session, tenant_session
from tests.factories import DEFAULT_PASSWORD, make_tenant, make_user, user_row

POLICY = LoginPolicy(max_failures=3, lockout_minutes=15, idle_minutes=30)


def _actions(engine: Engine) -> list[str]:
    with system_session(engine) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at)))


def test_passwords_are_argon2_and_verify() -> None:
    hashed = hash_password("a-long-password")
    assert hashed.startswith("$argon2id$") and "a-long-password" not in hashed
    assert verify_password(hashed, "a-long-password")
    assert not verify_password(hashed, "a-long-passworD")
    assert not verify_password(None, "anything")
    assert not verify_password("not a hash", "anything")


def test_short_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 10"):
        hash_password("short")


def test_login_returns_actor_and_is_audited(engine: Engine) -> None:
    tenant = make_tenant(engine)
    make_user(engine, tenant, "alice", Role.FRONT_DESK)
    actor = authenticate(engine, "  ALICE ", DEFAULT_PASSWORD, policy=POLICY)
    assert (actor.username, actor.role, actor.tenant_id) == ("alice", Role.FRONT_DESK, tenant)
    assert "auth.login" in _actions(engine)
    assert user_row(engine, "alice").last_login_at is not None


@pytest.mark.parametrize("username,password", [("alice", "wrong-password"), ("nobody", DEFAULT_PASSWORD)])
def test_wrong_password_and_unknown_user_look_the_same(engine: Engine, username: str, password: str) -> None:
    make_user(engine, make_tenant(engine), "alice")
    with pytest.raises(AuthenticationError, match="Wrong username or password"):
        authenticate(engine, username, password, policy=POLICY)
    assert _actions(engine)[-1] == "auth.login_failed"


def test_empty_input_is_a_clear_message(engine: Engine) -> None:
    with pytest.raises(AuthenticationError, match="Enter your username and password"):
        authenticate(engine, "", "", policy=POLICY)


def test_lockout_after_repeated_failures_then_expires(engine: Engine) -> None:
    make_user(engine, make_tenant(engine), "alice")
    now = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    for _ in range(POLICY.max_failures):
        with pytest.raises(AuthenticationError, match="Wrong"):
            authenticate(engine, "alice", "bad-password!", policy=POLICY, now=now)
    with pytest.raises(AuthenticationError, match="locked"):
        authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY, now=now + dt.timedelta(minutes=1))
    assert "auth.locked" in _actions(engine)
    actor = authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY, now=now + dt.timedelta(minutes=16))
    assert actor.username == "alice"
    assert user_row(engine, "alice").failed_login_count == 0


def test_success_resets_the_failure_count(engine: Engine) -> None:
    make_user(engine, make_tenant(engine), "alice")
    for _ in range(POLICY.max_failures - 1):
        with pytest.raises(AuthenticationError):
            authenticate(engine, "alice", "bad-password!", policy=POLICY)
    authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY)
    with pytest.raises(AuthenticationError, match="Wrong"):
        authenticate(engine, "alice", "bad-password!", policy=POLICY)
    authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY)


def test_deactivated_user_is_refused(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss")
    bob = make_user(engine, tenant, "bob", Role.ANALYST)
    with tenant_session(engine, tenant) as session:
        staff.set_active(session, admin, bob.user_id, False)
    with pytest.raises(AuthenticationError, match="deactivated"):
        authenticate(engine, "bob", DEFAULT_PASSWORD, policy=POLICY)
    assert auth.refresh_actor(engine, bob) is None
    assert auth.refresh_actor(engine, admin) == admin


def test_idle_timeout() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert not auth.is_idle_expired(now - dt.timedelta(minutes=29), policy=POLICY, now=now)
    assert auth.is_idle_expired(now - dt.timedelta(minutes=31), policy=POLICY, now=now)


def test_logout_and_timeout_are_audited(engine: Engine) -> None:
    actor = make_user(engine, make_tenant(engine), "alice")
    auth.record_logout(engine, actor)
    auth.record_logout(engine, actor, reason="timeout")
    assert _actions(engine)[-2:] == ["auth.logout", "auth.timeout"]


def test_sso_maps_claim_to_role_and_creates_the_user(engine: Engine) -> None:
    make_tenant(engine, "north")
    config = auth.SSOConfig(tenant_slug="north", role_claim="groups", role_map={"clinic-admins": "admin"})
    actor = auth.actor_from_sso(engine, {"email": "Lina@North.example", "groups": ["clinic-admins"]}, config)
    assert actor.role == Role.ADMIN and actor.username == "lina@north.example"
    again = auth.actor_from_sso(engine, {"email": "lina@north.example", "groups": ["clinic-admins"]}, config)
    assert again.user_id == actor.user_id
    with pytest.raises(AuthenticationError, match="no role"):
        auth.actor_from_sso(engine, {"email": "x@north.example", "groups": ["visitors"]}, config)


def test_failures_while_locked_do_not_extend_the_lock(engine: Engine) -> None:
    make_user(engine, make_tenant(engine), "alice")
    now = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    for _ in range(POLICY.max_failures):
        with pytest.raises(AuthenticationError):
            authenticate(engine, "alice", "bad-password!", policy=POLICY, now=now)
    locked_until = user_row(engine, "alice").locked_until
    for minute in range(1, 10):
        with pytest.raises(AuthenticationError, match="locked"):
            authenticate(engine, "alice", "bad-password!", policy=POLICY, now=now + dt.timedelta(minutes=minute))
    assert user_row(engine, "alice").locked_until == locked_until
    assert authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY,
                        now=now + dt.timedelta(minutes=POLICY.lockout_minutes, seconds=1)).username == "alice"


def test_an_admin_unlock_lets_the_user_in_at_once(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss")
    alice = make_user(engine, tenant, "alice", Role.FRONT_DESK)
    for _ in range(POLICY.max_failures):
        with pytest.raises(AuthenticationError):
            authenticate(engine, "alice", "bad-password!", policy=POLICY)
    with tenant_session(engine, tenant) as session:
        staff.unlock(session, admin, alice.user_id)
    assert authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY).user_id == alice.user_id


def test_unknown_usernames_never_lock_and_the_password_is_never_recorded(engine: Engine) -> None:
    make_user(engine, make_tenant(engine), "alice")
    for _ in range(POLICY.max_failures + 2):
        with pytest.raises(AuthenticationError, match="Wrong username or password"):
            authenticate(engine, "nobody", "typed-secret-123", policy=POLICY)
    assert "auth.locked" not in _actions(engine)
    with system_session(engine) as session:
        details = [str(d) for d in session.scalars(select(AuditEvent.details))]
    assert details and not any("typed-secret-123" in d for d in details)


def test_the_idle_limit_is_exclusive_and_a_reset_password_replaces_the_old_one(engine: Engine) -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert not auth.is_idle_expired(now - dt.timedelta(minutes=POLICY.idle_minutes), policy=POLICY, now=now)
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss")
    alice = make_user(engine, tenant, "alice", Role.ANALYST)
    with tenant_session(engine, tenant) as session:
        staff.reset_password(session, admin, alice.user_id, "a-brand-new-password")
    with pytest.raises(AuthenticationError, match="Wrong"):
        authenticate(engine, "alice", DEFAULT_PASSWORD, policy=POLICY)
    assert authenticate(engine, "alice", "a-brand-new-password", policy=POLICY).user_id == alice.user_id
