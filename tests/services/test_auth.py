"""Sign-in: hashing, wrong input, lockout, deactivation, idle timeout, audit of every outcome;
sessions that follow the account (epoch) and the new password chosen after an admin's reset."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pytest
from sqlalchemy import Engine, select, update

from app.errors import AuthenticationError, ValidationError
from app.services import auth, staff
from app.services.auth import LoginPolicy, authenticate
from app.services.passwords import hash_password, verify_password
from app.services.permissions import Actor
from db.enums import Role
from db.models import AuditEvent, User
from db.session import system_session, tenant_session
from db.types import utcnow
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
    with pytest.raises(AuthenticationError, match="Wrong username or password"):  # locked: not told apart
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
    assert auth.check_session(engine, bob) is None
    assert auth.check_session(engine, admin) == admin


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
        with pytest.raises(AuthenticationError, match="Wrong username or password"):
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
    with pytest.raises(auth.PasswordChangeRequired) as required:
        authenticate(engine, "alice", "a-brand-new-password", policy=POLICY)
    assert required.value.pending.user_id == alice.user_id


# --- a locked account, an unknown user and a wrong password look the same ---------------------


def _lock(engine: Engine, username: str, until: dt.datetime) -> None:
    with system_session(engine) as session:
        session.execute(update(User).where(User.username == username).values(locked_until=until))


def test_a_locked_account_answers_like_a_wrong_password_even_with_the_right_one(engine: Engine) -> None:
    make_user(engine, make_tenant(engine), "alice")
    _lock(engine, "alice", utcnow() + dt.timedelta(minutes=10))
    messages = set()
    for username, password in [("alice", DEFAULT_PASSWORD), ("alice", "bad-password!"), ("alice", "x-wrong-x"),
                               ("nobody", DEFAULT_PASSWORD)]:
        with pytest.raises(AuthenticationError) as refused:
            authenticate(engine, username, password, policy=POLICY)
        assert type(refused.value) is AuthenticationError
        messages.add(str(refused.value))
    assert messages == {auth.WRONG_CREDENTIALS}
    with system_session(engine) as session:  # the audit log still tells the admin why
        reasons = [e.details.get("reason") for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.login_failed").order_by(AuditEvent.created_at))]
    assert reasons == ["locked", "locked", "locked", "unknown user"]


def test_a_locked_account_an_unknown_user_and_a_wrong_password_take_the_same_time(engine: Engine) -> None:
    """The argon2 check runs in every case (real hashing parameters), so timing tells nothing."""
    tenant = make_tenant(engine)
    make_user(engine, tenant, "alice")
    make_user(engine, tenant, "lockedout")
    _lock(engine, "lockedout", utcnow() + dt.timedelta(days=1))
    policy = LoginPolicy(max_failures=1000, lockout_minutes=15, idle_minutes=30)  # alice never locks here
    cases = {"wrong password": ("alice", "wrong-password-1"), "locked": ("lockedout", DEFAULT_PASSWORD),
             "unknown user": ("nobody-at-all", DEFAULT_PASSWORD)}
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, (username, password) in cases.items():  # interleaved: a slow moment hits every case
            start = time.perf_counter()
            with pytest.raises(AuthenticationError, match="Wrong username or password"):
                authenticate(engine, username, password, policy=policy)
            timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    reference = medians["wrong password"]
    for name in ("locked", "unknown user"):  # without the hash check a refusal takes a few ms, not ~100
        assert 0.5 * reference <= medians[name] <= 2.0 * reference, medians


# --- sessions follow the account ---------------------------------------------------------------


@pytest.fixture
def two_clinics(engine: Engine):  # type: ignore[no-untyped-def]
    """Clinic A and clinic B, each with an admin and a front desk (usernames are platform-wide unique,
    so B's are suffixed); changes to A's front desk must not touch B's."""
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    return (engine, make_user(engine, a, "admin"), make_user(engine, a, "frontdesk", Role.FRONT_DESK),
            make_user(engine, b, "admin-b"), make_user(engine, b, "frontdesk-b", Role.FRONT_DESK))


CHANGES = {
    "reset": lambda s, admin, user: staff.reset_password(s, admin, user.user_id, "a-brand-new-password"),
    "deactivate": lambda s, admin, user: staff.set_active(s, admin, user.user_id, False),
    "role change": lambda s, admin, user: staff.change_role(s, admin, user.user_id, Role.ANALYST),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_by_an_admin_ends_that_users_sessions_only(two_clinics, change: str) -> None:  # type: ignore[no-untyped-def]
    engine, admin_a, desk_a, _admin_b, desk_b = two_clinics
    signed_in_a = authenticate(engine, "frontdesk", DEFAULT_PASSWORD, policy=POLICY)
    signed_in_b = authenticate(engine, "frontdesk-b", DEFAULT_PASSWORD, policy=POLICY)
    assert signed_in_b.user_id == desk_b.user_id and auth.check_session(engine, signed_in_a) == signed_in_a
    with tenant_session(engine, admin_a.tenant_id) as session:
        CHANGES[change](session, admin_a, desk_a)

    assert auth.check_session(engine, signed_in_a) is None
    assert auth.check_session(engine, signed_in_b) == signed_in_b  # clinic B's front desk is untouched
    assert auth.check_session(engine, admin_a) == admin_a  # and so is the admin who made the change
    with system_session(engine) as session:
        revoked = session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.session_revoked")).all()
    assert [(e.tenant_id, e.object_id, e.details["reason"]) for e in revoked] == [
        (desk_a.tenant_id, str(desk_a.user_id), "deactivated" if change == "deactivate" else "epoch")]


def test_a_role_that_differs_ends_the_session_even_without_an_epoch_change(engine: Engine) -> None:
    """E.g. single sign-on maps the user to another role at a sign-in elsewhere."""
    tenant = make_tenant(engine)
    desk = make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    with system_session(engine) as session:
        session.execute(update(User).where(User.id == desk.user_id).values(role=Role.ANALYST))
    assert auth.check_session(engine, desk) is None


def test_a_deleted_user_is_signed_out(engine: Engine) -> None:
    tenant = make_tenant(engine)
    desk = make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    with system_session(engine) as session:
        session.execute(update(User).where(User.id == desk.user_id).values(deleted_at=utcnow()))
    assert auth.check_session(engine, desk) is None


def test_other_changes_take_effect_without_ending_the_session(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss")
    analyst = make_user(engine, tenant, "omar", Role.ANALYST)
    with tenant_session(engine, tenant) as session:
        staff.set_full_contact_access(session, admin, analyst.user_id, True)
        staff.unlock(session, admin, analyst.user_id)
    fresh = auth.check_session(engine, analyst)
    assert fresh is not None and fresh.can_view_full_contacts


# --- a new password after an admin's reset -----------------------------------------------------


TEMPORARY = "temporary-password-1"


def _reset(engine: Engine, admin, user) -> None:  # type: ignore[no-untyped-def]
    with tenant_session(engine, admin.tenant_id) as session:
        staff.reset_password(session, admin, user.user_id, TEMPORARY)


def test_after_a_reset_the_user_must_choose_a_new_password_before_getting_an_actor(two_clinics) -> None:  # type: ignore[no-untyped-def]
    engine, admin_a, desk_a, _admin_b, _desk_b = two_clinics
    _reset(engine, admin_a, desk_a)
    with pytest.raises(auth.PasswordChangeRequired, match="Choose a new password") as required:
        authenticate(engine, "frontdesk", "temporary-password-1", policy=POLICY)
    pending = required.value.pending
    assert not isinstance(pending, Actor)  # nothing another service would accept
    assert user_row(engine, "frontdesk").last_login_at is None
    with pytest.raises(ValidationError, match="not the one your administrator gave you"):
        auth.complete_password_change(engine, pending, "temporary-password-1", policy=POLICY)
    with pytest.raises(ValidationError, match="at least 10"):
        auth.complete_password_change(engine, pending, "short", policy=POLICY)

    actor = auth.complete_password_change(engine, pending, "my-own-password-9", policy=POLICY)

    assert (actor.user_id, actor.role) == (desk_a.user_id, Role.FRONT_DESK)
    assert auth.check_session(engine, actor) == actor
    row = user_row(engine, "frontdesk")
    assert not row.must_change_password and row.session_epoch == actor.session_epoch
    with pytest.raises(AuthenticationError, match="Wrong"):
        authenticate(engine, "frontdesk", "temporary-password-1", policy=POLICY)
    assert authenticate(engine, "frontdesk", "my-own-password-9", policy=POLICY).user_id == desk_a.user_id
    # the same pending change cannot be used twice
    with pytest.raises(AuthenticationError, match="changed by an administrator"):
        auth.complete_password_change(engine, pending, "another-password-9", policy=POLICY)
    actions = _actions(engine)
    for action in ("staff.reset_password", "auth.password_change_required", "auth.password_changed"):
        assert action in actions


@pytest.mark.parametrize("change", ["reset again", "deactivate", "role change"])
def test_a_pending_password_change_is_refused_when_the_account_changed_meanwhile(two_clinics, change: str) -> None:  # type: ignore[no-untyped-def]
    engine, admin_a, desk_a, _admin_b, _desk_b = two_clinics
    _reset(engine, admin_a, desk_a)
    with pytest.raises(auth.PasswordChangeRequired) as required:
        authenticate(engine, "frontdesk", "temporary-password-1", policy=POLICY)
    with tenant_session(engine, admin_a.tenant_id) as session:
        CHANGES["reset" if change == "reset again" else change](session, admin_a, desk_a)
    with pytest.raises(AuthenticationError, match="changed by an administrator"):
        auth.complete_password_change(engine, required.value.pending, "my-own-password-9", policy=POLICY)


def test_a_pending_password_change_expires_with_the_idle_limit(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin, desk = make_user(engine, tenant, "boss"), make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    _reset(engine, admin, desk)
    now = utcnow()
    with pytest.raises(auth.PasswordChangeRequired) as required:
        authenticate(engine, "frontdesk", "temporary-password-1", policy=POLICY, now=now)
    later = now + dt.timedelta(minutes=POLICY.idle_minutes + 1)
    with pytest.raises(AuthenticationError, match="took too long"):
        auth.complete_password_change(engine, required.value.pending, "my-own-password-9", policy=POLICY, now=later)


def test_a_wrong_password_after_a_reset_is_just_wrong(engine: Engine) -> None:
    tenant = make_tenant(engine)
    admin, desk = make_user(engine, tenant, "boss"), make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    _reset(engine, admin, desk)
    with pytest.raises(AuthenticationError) as refused:
        authenticate(engine, "frontdesk", "not-the-temporary-one", policy=POLICY)
    assert type(refused.value) is AuthenticationError and str(refused.value) == auth.WRONG_CREDENTIALS
