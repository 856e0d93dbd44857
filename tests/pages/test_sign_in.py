"""Signing in and out of the staff app: the form, wrong passwords, idle timeout, account changes by
an admin (reset, deactivation, role change), the new password after a reset, SSO."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import Engine, select, update
from streamlit.testing.v1 import AppTest

from app.services import auth, staff
from app.services.permissions import Actor
from app.ui.text import plain
from db.enums import Role
from db.models import AuditEvent, StaffSession
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import make_tenant, make_user
from tests.pages.conftest import Clinic, button, new_app, sign_in, signed_in, texts


def audit_actions(clinic: Clinic) -> list[str]:
    with system_session(clinic.engine) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.created_at)))


def test_signed_out_visitors_see_only_the_sign_in_form(clinic: Clinic) -> None:
    at = new_app().run()

    assert not at.exception
    assert at.title[0].value == "Clinic Notifications"
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "Sign in" in [b.label for b in at.button]
    assert "Log out" not in [b.label for b in at.button]
    assert not at.sidebar.children  # no menu, no user
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/home.py")


def test_a_wrong_password_shows_the_error_and_no_menu(clinic: Clinic) -> None:
    at = sign_in(new_app().run(), "amira", "not-the-password")

    assert not at.exception
    assert texts(at.error) == [auth.WRONG_CREDENTIALS]
    assert "Log out" not in [b.label for b in at.button]
    with pytest.raises(ValueError):
        at.switch_page("../pages/staff.py")


def test_an_empty_form_asks_for_both_fields(clinic: Clinic) -> None:
    at = sign_in(new_app().run(), "", "")

    assert texts(at.error) == ["Enter your username and password."]


def test_a_locked_account_answers_like_a_wrong_password(clinic: Clinic) -> None:
    for _ in range(5):
        with pytest.raises(auth.AuthenticationError):
            auth.authenticate(clinic.engine, "fatima", "wrong-password")

    at = sign_in(new_app().run(), "fatima")  # the right password, but locked

    assert texts(at.error) == [auth.WRONG_CREDENTIALS]
    assert texts(sign_in(new_app().run(), "nobody").error) == [auth.WRONG_CREDENTIALS]
    assert "Log out" not in [b.label for b in at.button]


@pytest.mark.parametrize("role", list(Role))
def test_signing_in_shows_home_and_who_am_i(clinic: Clinic, role: Role) -> None:
    actor = clinic.by_role(role)
    at = signed_in(actor)

    sidebar = [e.value for e in at.sidebar.markdown] + [e.value for e in at.sidebar.caption]
    assert f"**{plain(actor.display_name)}**" in sidebar
    assert f"{plain(actor.username)} · {role.label}" in sidebar
    assert "Clinic: Al Noor Clinic" in sidebar
    assert "Log out" in [b.label for b in at.sidebar.button]
    if role == Role.ANALYST:  # analysts land on Analytics; the Dashboard says who and where
        at.switch_page("../pages/home.py").run()
    assert "Al Noor Clinic" in at.main.markdown[0].value


def test_logging_out_returns_to_the_sign_in_form_and_is_audited(clinic: Clinic) -> None:
    at = signed_in(clinic.front_desk)

    button(at, "Log out").click().run()

    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "auth.logout" in audit_actions(clinic)
    with pytest.raises(ValueError):
        at.switch_page("../pages/home.py")


def idle_for(clinic: Clinic, at: AppTest, minutes: int) -> None:
    """As if the session's last activity (in any tab) was ``minutes`` ago."""
    ref = at.session_state["auth.session"]
    seen = utcnow() - dt.timedelta(minutes=minutes)
    with tenant_session(clinic.engine, ref.tenant_id) as session:
        session.execute(update(StaffSession).where(StaffSession.id == ref.session_id).values(
            last_seen_at=seen, idle_expires_at=seen + dt.timedelta(minutes=30)))


def test_an_idle_session_is_signed_out_with_a_notice(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)

    idle_for(clinic, at, 31)
    at.run()

    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert texts(at.info) == ["You were signed out after 30 minutes without activity."]
    assert "auth.timeout" in audit_actions(clinic)


def test_activity_within_the_idle_limit_keeps_the_session(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)

    idle_for(clinic, at, 29)
    at.run()

    assert at.title[0].value == "Analytics"  # an analyst's landing page
    with tenant_session(clinic.engine, clinic.analyst.tenant_id) as session:  # the click counted
        assert session.scalar(select(StaffSession.last_seen_at)) > utcnow() - dt.timedelta(minutes=1)


# --- an admin's change ends the user's sessions at their next click ----------------------------

TEMPORARY = "temporary-password-1"
CHANGES = {
    "reset": lambda s, admin, user: staff.reset_password(s, admin, user.user_id, TEMPORARY),
    "deactivate": lambda s, admin, user: staff.set_active(s, admin, user.user_id, False),
    "role change": lambda s, admin, user: staff.change_role(s, admin, user.user_id, Role.ANALYST),
}


def change_account(clinic: Clinic, change: str, user: Actor | None = None) -> None:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        CHANGES[change](session, clinic.admin, user or clinic.front_desk)


def signed_out_with(at: AppTest, notice: str) -> None:
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert texts(at.info) == [notice]
    assert not at.sidebar.children
    with pytest.raises(ValueError):
        at.switch_page("../pages/home.py")


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_by_an_admin_signs_the_user_out_at_the_next_click(clinic: Clinic, change: str) -> None:
    # Clinic B has a front desk too; a change to clinic A's must leave B's session alone.
    clinic_b = make_tenant(clinic.engine, "clinic-b", "Al Shifa Clinic")
    desk_b = make_user(clinic.engine, clinic_b, "fatima-b", Role.FRONT_DESK)
    at, at_b, at_admin = signed_in(clinic.front_desk), signed_in(desk_b), signed_in(clinic.admin)

    change_account(clinic, change)
    at.run()
    at_b.run()
    at_admin.run()

    signed_out_with(at, "Your account was changed by an administrator; sign in again.")
    assert "auth.session_revoked" in audit_actions(clinic)
    assert at_b.title[0].value == "Dashboard" and "Log out" in [b.label for b in at_b.sidebar.button]
    assert at_admin.title[0].value == "Dashboard"  # the admin who made the change stays


def test_the_same_change_twice_does_not_end_a_fresh_session(clinic: Clinic) -> None:
    change_account(clinic, "role change")
    at = signed_in(clinic.analyst)  # omar is an analyst already: nothing changes
    change_account(clinic, "role change", clinic.analyst)
    at.run()

    assert at.title[0].value == "Analytics"


# --- choosing a new password after an admin's reset ---------------------------------------------


def choose(at: AppTest, password: str, repeat: str | None = None) -> AppTest:
    at.text_input(key="new_password").input(password)
    at.text_input(key="new_password_confirm").input(password if repeat is None else repeat)
    return button(at, "Set password and sign in").click().run()


def test_a_reset_user_must_choose_a_new_password_before_seeing_any_page(clinic: Clinic) -> None:
    change_account(clinic, "reset")

    at = sign_in(new_app().run(), "fatima", TEMPORARY)

    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["Choose a new password"]
    assert [t.label for t in at.text_input] == ["New password", "Repeat the new password"]
    assert auth.CHOOSE_NEW_PASSWORD in texts(at.info)
    assert not at.sidebar.children and "Log out" not in [b.label for b in at.button]
    for page in ("../pages/home.py", "../pages/messages.py", "../pages/staff.py"):
        with pytest.raises(ValueError):
            at.switch_page(page)
    assert "auth.actor" not in at.session_state  # no actor any page or service could use

    at.run()  # a click elsewhere: still only this form
    assert [t.label for t in at.text_input] == ["New password", "Repeat the new password"]

    assert texts(choose(at, "my-own-password-9", "my-own-password-0").error) == ["The two passwords are not the same."]
    assert texts(choose(at, TEMPORARY).error) == [auth.SAME_PASSWORD]
    assert texts(choose(at, "short").error) == ["The password must be at least 10 characters long."]
    assert "auth.actor" not in at.session_state

    choose(at, "my-own-password-9")

    assert not at.exception, at.exception
    assert at.title[0].value == "Dashboard"
    assert "Log out" in [b.label for b in at.sidebar.button]
    assert "auth.password_changed" in audit_actions(clinic)
    # the next sign-in uses the new password and goes straight in
    with pytest.raises(auth.AuthenticationError, match="Wrong"):
        auth.authenticate(clinic.engine, "fatima", TEMPORARY)
    assert sign_in(new_app().run(), "fatima", "my-own-password-9").title[0].value == "Dashboard"


def test_back_to_sign_in_leaves_the_password_to_choose_at_the_next_sign_in(clinic: Clinic) -> None:
    change_account(clinic, "reset")
    at = sign_in(new_app().run(), "fatima", TEMPORARY)

    button(at, "Back to sign in").click().run()

    assert [t.label for t in at.text_input] == ["Username", "Password"]
    at = sign_in(at, "fatima", TEMPORARY)
    assert [s.value for s in at.subheader] == ["Choose a new password"]


def test_a_pending_new_password_ends_when_the_account_changes_again(clinic: Clinic) -> None:
    change_account(clinic, "reset")
    at = sign_in(new_app().run(), "fatima", TEMPORARY)
    change_account(clinic, "deactivate")

    choose(at, "my-own-password-9")

    signed_out_with(at, "Your account was changed by an administrator; sign in again.")


def test_a_pending_new_password_times_out_like_a_session(clinic: Clinic) -> None:
    change_account(clinic, "reset")
    at = sign_in(new_app().run(), "fatima", TEMPORARY)
    pending = at.session_state["auth.pending_password_change"]
    at.session_state["auth.pending_password_change"] = dataclasses.replace(
        pending, issued_at=pending.issued_at - dt.timedelta(minutes=31))

    at.run()

    signed_out_with(at, "You were signed out after 30 minutes without activity.")


# --- single sign-on -----------------------------------------------------------------------------

SSO_SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "test-cookie-secret",
        "client_id": "clinic",
        "client_secret": "secret",
        "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
    },
    "sso": {"tenant_slug": "clinic-sso", "role_claim": "roles", "role_map": {"Reception": "front_desk"}},
}


def test_without_sso_secrets_there_is_no_sso_button(clinic: Clinic) -> None:
    at = new_app().run()

    assert "Sign in with single sign-on" not in [b.label for b in at.button]


def test_with_sso_secrets_the_sign_in_screen_offers_sso(app_engine: Engine) -> None:
    at = new_app()
    at.secrets = SSO_SECRETS
    at.user = {"is_logged_in": False}
    at.run()

    assert "Sign in with single sign-on" in [b.label for b in at.button]
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_an_sso_identity_signs_in_with_its_mapped_role(app_engine: Engine) -> None:
    make_tenant(app_engine, "clinic-sso", "Riyadh North")
    at = new_app()
    at.secrets = SSO_SECRETS
    at.user = {"is_logged_in": True, "email": "nora@example.com", "name": "Nora Saleh", "roles": ["Reception"]}
    at.run()

    assert not at.exception
    assert at.title[0].value == "Dashboard"
    assert f"{plain('nora@example.com')} · Front desk" in [c.value for c in at.sidebar.caption]


def test_an_sso_identity_without_a_role_is_refused(app_engine: Engine) -> None:
    make_tenant(app_engine, "clinic-sso", "Riyadh North")
    at = new_app()
    at.secrets = SSO_SECRETS
    at.user = {"is_logged_in": True, "email": "guest@example.com", "roles": ["Visitors"]}
    at.run()

    assert texts(at.error) == ["Your identity provider account has no role in this system."]
    assert "Sign out of single sign-on" in [b.label for b in at.button]
