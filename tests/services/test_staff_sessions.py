"""Server-side sign-in sessions: a one-time token for the cookie, only hashes stored, idle and
absolute expiry, sign-out everywhere, and an admin's change ends every session of the account,
never another clinic's. Two clinics whose staff look alike, on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import Engine, select

from app.services import staff, staff_sessions
from app.services.permissions import Actor
from app.services.staff_sessions import Ended, SessionPolicy
from db.enums import Role
from db.models import AuditEvent, StaffSession
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import make_tenant, make_user

POLICY = SessionPolicy(idle_minutes=30, absolute_hours=12)


@dataclasses.dataclass
class Clinics:
    engine: Engine
    admin: Actor
    desk: Actor
    desk_b: Actor  # the other clinic's front desk, with a look-alike name


@pytest.fixture
def clinics(engine: Engine) -> Clinics:
    a = make_tenant(engine, "clinic-a", "Al Noor Clinic")
    b = make_tenant(engine, "clinic-b", "Al Noor Clinic")
    return Clinics(engine, make_user(engine, a, "amira", Role.ADMIN), make_user(engine, a, "fatima", Role.FRONT_DESK),
                   make_user(engine, b, "fatima-b", Role.FRONT_DESK))


def _actions(engine: Engine) -> list[str]:
    with system_session(engine) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at)))


def _row(engine: Engine, ref: staff_sessions.SessionRef) -> StaffSession:
    with tenant_session(engine, ref.tenant_id) as session:
        row = session.get(StaffSession, ref.session_id)
        assert row is not None
        session.expunge(row)
        return row


def signed_in(clinics: Clinics, actor: Actor, now: dt.datetime | None = None) -> tuple[staff_sessions.SessionRef, str]:
    started = staff_sessions.start(clinics.engine, actor, policy=POLICY, now=now)
    cookie = staff_sessions.redeem(clinics.engine, started.handoff_token, now=now)
    assert cookie is not None
    return started.ref, cookie


def test_the_token_is_redeemed_once_for_a_cookie_that_finds_the_session(clinics: Clinics) -> None:
    started = staff_sessions.start(clinics.engine, clinics.desk, policy=POLICY)

    cookie = staff_sessions.redeem(clinics.engine, started.handoff_token)

    assert cookie and cookie != started.handoff_token and len(cookie) >= 43  # 256 random bits
    assert staff_sessions.redeem(clinics.engine, started.handoff_token) is None  # single use
    assert staff_sessions.find(clinics.engine, cookie) == started.ref
    assert staff_sessions.find(clinics.engine, started.handoff_token) is None  # a token is never the cookie
    assert staff_sessions.check(clinics.engine, started.ref, policy=POLICY) == clinics.desk
    row = _row(clinics.engine, started.ref)
    stored = " ".join(str(v) for v in vars(row).values())
    assert cookie not in stored and started.handoff_token not in stored  # only their hashes
    assert row.secret_hash == staff_sessions.digest(cookie) and row.handoff_hash is None


def test_a_token_older_than_a_minute_is_refused(clinics: Clinics) -> None:
    now = utcnow()
    started = staff_sessions.start(clinics.engine, clinics.desk, policy=POLICY, now=now)

    late = now + dt.timedelta(seconds=staff_sessions.HANDOFF_SECONDS + 1)
    assert staff_sessions.redeem(clinics.engine, started.handoff_token, now=late) is None
    assert staff_sessions.redeem(clinics.engine, "") is None
    assert staff_sessions.redeem(clinics.engine, "made-up-token") is None
    # the tab that signed in is signed in all the same; only reloads need the cookie
    assert staff_sessions.check(clinics.engine, started.ref, policy=POLICY, now=now) == clinics.desk


def test_activity_moves_the_idle_limit_at_most_once_a_minute(clinics: Clinics) -> None:
    now = utcnow()
    ref, _ = signed_in(clinics, clinics.desk, now)

    staff_sessions.check(clinics.engine, ref, policy=POLICY, now=now + dt.timedelta(seconds=30))
    assert _row(clinics.engine, ref).last_seen_at == now  # no write for a click within the minute
    staff_sessions.check(clinics.engine, ref, policy=POLICY, now=now + dt.timedelta(minutes=29))
    later = now + dt.timedelta(minutes=58)  # 29 minutes after the last activity: still signed in
    assert staff_sessions.check(clinics.engine, ref, policy=POLICY, now=later) == clinics.desk
    row = _row(clinics.engine, ref)
    assert (row.last_seen_at, row.idle_expires_at) == (later, later + dt.timedelta(minutes=30))


def test_an_idle_session_ends_once_audited(clinics: Clinics) -> None:
    now = utcnow()
    ref, cookie = signed_in(clinics, clinics.desk, now)
    idle = now + dt.timedelta(minutes=31)

    assert staff_sessions.check(clinics.engine, ref, policy=POLICY, now=idle) == Ended("timeout")
    assert staff_sessions.check(clinics.engine, ref, policy=POLICY, now=idle) == Ended("timeout")  # other tab

    assert _actions(clinics.engine).count("auth.timeout") == 1
    assert staff_sessions.redeem(clinics.engine, cookie, now=idle) is None


def test_a_busy_session_still_ends_at_its_absolute_expiry(clinics: Clinics) -> None:
    now = utcnow()
    ref, _ = signed_in(clinics, clinics.desk, now)
    for minutes in range(20, 12 * 60, 20):  # a click every 20 minutes for 12 hours
        assert staff_sessions.check(clinics.engine, ref, policy=POLICY, now=now + dt.timedelta(minutes=minutes)) \
            == clinics.desk

    assert staff_sessions.check(clinics.engine, ref, policy=POLICY, now=now + dt.timedelta(hours=12)) \
        == Ended("expired")


def test_signing_out_ends_the_session_for_every_tab_and_the_cookie(clinics: Clinics) -> None:
    ref, cookie = signed_in(clinics, clinics.desk)
    other_ref, _ = signed_in(clinics, clinics.desk_b)

    assert staff_sessions.end(clinics.engine, ref, clinics.desk) is True
    assert staff_sessions.end(clinics.engine, ref, clinics.desk) is False  # once

    assert staff_sessions.check(clinics.engine, staff_sessions.find(clinics.engine, cookie), policy=POLICY) \
        == Ended("logout")
    assert staff_sessions.check(clinics.engine, other_ref, policy=POLICY) == clinics.desk_b
    assert _actions(clinics.engine).count("auth.logout") == 1


def test_the_sign_out_route_ends_the_cookies_session(clinics: Clinics) -> None:
    ref, cookie = signed_in(clinics, clinics.desk)

    assert staff_sessions.end_by_cookie(clinics.engine, cookie) is True
    assert staff_sessions.end_by_cookie(clinics.engine, cookie) is False
    assert staff_sessions.end_by_cookie(clinics.engine, None) is False

    assert staff_sessions.check(clinics.engine, ref, policy=POLICY) == Ended("logout")
    assert _actions(clinics.engine).count("auth.logout") == 1


CHANGES = {
    "reset": lambda s, admin, user: staff.reset_password(s, admin, user.user_id, "temporary-password-1"),
    "deactivate": lambda s, admin, user: staff.set_active(s, admin, user.user_id, False),
    "role change": lambda s, admin, user: staff.change_role(s, admin, user.user_id, Role.ANALYST),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_an_admins_change_ends_every_session_of_the_account_only(clinics: Clinics, change: str) -> None:
    phone, _ = signed_in(clinics, clinics.desk)
    laptop, _ = signed_in(clinics, clinics.desk)
    neighbour, _ = signed_in(clinics, clinics.desk_b)
    admins, _ = signed_in(clinics, clinics.admin)

    with tenant_session(clinics.engine, clinics.admin.tenant_id) as session:
        CHANGES[change](session, clinics.admin, clinics.desk)

    assert staff_sessions.check(clinics.engine, phone, policy=POLICY) == Ended("account")
    assert staff_sessions.check(clinics.engine, laptop, policy=POLICY) == Ended("account")
    assert staff_sessions.check(clinics.engine, neighbour, policy=POLICY) == clinics.desk_b
    assert staff_sessions.check(clinics.engine, admins, policy=POLICY) == clinics.admin
    assert _actions(clinics.engine).count("auth.session_revoked") == 2
    assert _row(clinics.engine, phone).revoked_reason == "account"


def test_a_session_is_found_only_in_its_own_clinic(clinics: Clinics) -> None:
    ref, _ = signed_in(clinics, clinics.desk)
    wrong_clinic = staff_sessions.SessionRef(ref.session_id, clinics.desk_b.tenant_id)

    assert staff_sessions.check(clinics.engine, wrong_clinic, policy=POLICY) == Ended("logout")
    assert staff_sessions.end(clinics.engine, wrong_clinic, clinics.desk_b) is False
    assert staff_sessions.check(clinics.engine, ref, policy=POLICY) == clinics.desk


def test_a_users_sessions_long_over_are_deleted_at_their_next_sign_in(clinics: Clinics) -> None:
    long_ago = utcnow() - staff_sessions.KEEP_ENDED - dt.timedelta(days=1)
    old, _ = signed_in(clinics, clinics.desk, long_ago)
    colleague_old, _ = signed_in(clinics, clinics.admin, long_ago)
    other_clinic_old, _ = signed_in(clinics, clinics.desk_b, long_ago)
    recent, _ = signed_in(clinics, clinics.desk, utcnow() - dt.timedelta(days=2))

    new, _ = signed_in(clinics, clinics.desk)

    with system_session(clinics.engine) as session:
        left = set(session.scalars(select(StaffSession.id)))
    assert old.session_id not in left
    assert {colleague_old.session_id, other_clinic_old.session_id, recent.session_id, new.session_id} <= left
