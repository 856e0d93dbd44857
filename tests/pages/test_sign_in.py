"""Signing in and out of the staff app: the form, wrong passwords, idle timeout, deactivation, SSO."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from app.services import auth, staff
from app.ui.text import plain
from db.enums import Role
from db.models import AuditEvent
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import make_tenant
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


def test_a_locked_account_says_so(clinic: Clinic) -> None:
    for _ in range(5):
        with pytest.raises(auth.AuthenticationError):
            auth.authenticate(clinic.engine, "fatima", "wrong-password")

    at = sign_in(new_app().run(), "fatima")

    assert "locked after too many failed sign-ins" in at.error[0].value
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


def test_an_idle_session_is_signed_out_with_a_notice(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)

    at.session_state["auth.last_activity"] = utcnow() - dt.timedelta(minutes=31)
    at.run()

    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert texts(at.info) == ["You were signed out after 30 minutes without activity."]
    assert "auth.timeout" in audit_actions(clinic)


def test_activity_within_the_idle_limit_keeps_the_session(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)

    at.session_state["auth.last_activity"] = utcnow() - dt.timedelta(minutes=29)
    at.run()

    assert at.title[0].value == "Analytics"  # an analyst's landing page


def test_a_deactivated_user_is_signed_out_at_the_next_click(clinic: Clinic) -> None:
    at = signed_in(clinic.front_desk)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        staff.set_active(session, clinic.admin, clinic.front_desk.user_id, False)

    at.run()

    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "no longer active" in at.info[0].value


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
