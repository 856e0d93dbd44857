"""The Settings page (admins): the clinic profile, routes, write-only credentials, the delivery-report
address, time zone and country."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.providers.routing import SAUDI
from db.enums import Channel, Language, Role
from db.models import AuditEvent, ProviderCredential, Tenant
from db.session import system_session
from tests.pages.conftest import LANDING_TITLES, Clinic, button, form_key, signed_in, texts


@pytest.fixture
def at(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CREDENTIALS_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://notify.clinic.example")
    app = signed_in(clinic.admin)
    app.switch_page("../pages/settings.py").run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Settings"
    return app


def _audit(clinic: Clinic, action: str) -> list[dict]:
    with system_session(clinic.engine) as session:
        return list(session.scalars(select(AuditEvent.details).where(AuditEvent.action == action)))


def _tenant(clinic: Clinic) -> Tenant:
    with system_session(clinic.engine) as session:
        tenant = session.get(Tenant, clinic.admin.tenant_id)
        session.expunge(tenant)
        return tenant


def test_admin_changes_the_saudi_sms_route(at: AppTest, clinic: Clinic) -> None:
    key = f"{Channel.SMS.value}_{SAUDI}"
    at.selectbox(key=f"provider_{key}_0").set_value("unifonic")
    at.text_input(key=f"sender_{key}_0").input("AgdarClinic")
    at.text_input(key=f"promo_{key}_0").input("AgdarClinic-AD")
    at.selectbox(key=f"provider_{key}_1").set_value("twilio")
    button(at, "Save route").click().run()  # the first form on the page is SMS to Saudi numbers
    assert not at.exception and not at.error, texts(at.error)
    assert "Saved the route for SMS (Saudi numbers (+966))." in texts(at.success)
    assert _tenant(clinic).settings["routing"]["sms:SA"][0] == {
        "provider": "unifonic", "sender": "AgdarClinic", "promotional_sender": "AgdarClinic-AD"}
    assert _audit(clinic, "settings.route_changed")[0]["after"] == ["unifonic", "twilio"]
    assert any("Unifonic → Twilio" in e.label for e in at.expander)


def test_a_bad_sender_is_refused_with_the_reason_and_nothing_saved(at: AppTest, clinic: Clinic) -> None:
    key = f"{Channel.SMS.value}_{SAUDI}"
    at.selectbox(key=f"provider_{key}_0").set_value("unifonic")
    at.text_input(key=f"promo_{key}_0").input("AgdarClinic")
    button(at, "Save route").click().run()
    assert any("-AD" in t for t in texts(at.error))
    assert not (_tenant(clinic).settings or {}).get("routing")
    assert at.text_input(key=f"promo_{key}_0").value == "AgdarClinic"  # nothing typed is lost


def test_credentials_are_saved_and_never_shown_back(at: AppTest, clinic: Clinic) -> None:
    at.text_input(key="cred_twilio_account_sid").input("AC" + "1" * 32)
    at.text_input(key="cred_twilio_auth_token").input("super-secret-token")
    typed_in = at.text_input(key="cred_twilio_auth_token").id
    button(at, "Save credentials").click().run()
    assert "Saved the Twilio credentials." in texts(at.success)
    token = at.text_input(key=form_key(at, "credentials_twilio", "cred_twilio_auth_token"))
    assert token.value == "" and token.id != typed_in  # a new, empty box: the browser cannot give the secret back
    page = " ".join(texts(at.markdown) + texts(at.text_input) + texts(at.code) + texts(at.caption))
    assert "super-secret-token" not in page and "AC1111" not in page
    assert any("Twilio**: set · last changed" in t for t in texts(at.markdown))
    with system_session(clinic.engine) as session:
        assert session.scalar(select(ProviderCredential.provider)) == "twilio"
    assert _audit(clinic, "settings.credentials_changed") == [{"provider": "twilio",
                                                               "fields": ["account_sid", "auth_token"]}]


def test_the_report_address_is_shown_once(at: AppTest, clinic: Clinic) -> None:
    at.button(key="rotate_dlr").click().run()
    [code] = at.code
    assert code.value.startswith("https://notify.clinic.example/unifonic/dlr/")
    token = code.value.rsplit("/", 1)[1]
    assert _tenant(clinic).unifonic_dlr_token_hash not in (None, token)
    at.run()
    assert not at.code  # gone after the next interaction
    assert _audit(clinic, "settings.dlr_token_created") == [{}]


def test_locale_is_saved(at: AppTest, clinic: Clinic) -> None:
    at.text_input(key="locale_timezone").input(" Asia/Dubai ")
    at.text_input(key="locale_region").input("ae")
    button(at, "Save").click().run()
    assert not at.error, texts(at.error)
    assert (_tenant(clinic).timezone, _tenant(clinic).default_region) == ("Asia/Dubai", "AE")
    # the form shows them as saved, not as typed
    assert at.text_input(key=form_key(at, "locale", "locale_timezone")).value == "Asia/Dubai"
    assert at.text_input(key=form_key(at, "locale", "locale_region")).value == "AE"


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_front_desk_and_analysts_cannot_open_settings(clinic: Clinic, role: Role) -> None:
    at = signed_in(clinic.by_role(role))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/settings.py")
    at.run()
    assert at.title[0].value == LANDING_TITLES[role]



def test_admin_saves_the_clinic_profile_and_it_is_audited(at: AppTest, clinic: Clinic) -> None:
    at.text_input(key="profile_name_ar").input("  عيادة النور ")
    typed_in = at.text_input(key="profile_name_ar").id
    at.selectbox(key="profile_language").set_value(Language.AR)
    at.text_input(key="profile_email_sender").input("Al Noor Reminders")
    at.time_input(key="profile_window_start").set_value(dt.time(10, 0))
    at.time_input(key="profile_window_end").set_value(dt.time(18, 0))
    button(at, "Save profile").click().run()

    assert not at.exception and not at.error, texts(at.error)
    assert "Saved the clinic profile." in texts(at.success)
    tenant = _tenant(clinic)
    assert (tenant.name, tenant.name_ar, tenant.default_language, tenant.email_sender_name) == (
        "Al Noor Clinic", "عيادة النور", Language.AR, "Al Noor Reminders")
    assert tenant.promotional_window == (dt.time(10, 0), dt.time(18, 0))
    [details] = _audit(clinic, "settings.profile_changed")
    assert details["promotional_window_start"] == {"from": "09:00", "to": "10:00"}

    def key(name: str) -> str:
        return form_key(at, "profile", name)

    # a new form, showing the profile as saved (not as typed)
    assert at.text_input(key=key("profile_name_ar")).value == "عيادة النور"
    assert at.text_input(key=key("profile_name_ar")).id != typed_in
    assert at.text_input(key=key("profile_name_en")).value == "Al Noor Clinic"
    assert at.text_input(key=key("profile_email_sender")).value == "Al Noor Reminders"
    assert at.selectbox(key=key("profile_language")).value == Language.AR
    assert at.time_input(key=key("profile_window_start")).value == dt.time(10, 0)


def test_a_profile_without_an_english_name_is_refused_and_nothing_saved(at: AppTest, clinic: Clinic) -> None:
    at.text_input(key="profile_name_en").input(" ")
    button(at, "Save profile").click().run()
    assert "The clinic needs a name in English." in texts(at.error)
    assert _tenant(clinic).name == "Al Noor Clinic"


def test_no_credentials_key_is_said_in_plain_words(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_KEY", raising=False)
    at = signed_in(clinic.admin)
    at.switch_page("../pages/settings.py").run()
    shown = " ".join(texts(at.info))
    assert "not set up to keep a clinic's own provider accounts" in shown
    assert "CREDENTIALS_KEY" not in " ".join(texts(at.info) + texts(at.markdown) + texts(at.caption))
