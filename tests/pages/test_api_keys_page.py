"""Settings -> Appointments API (admins): the API's address, a new key shown once, the keys with their
times in the clinic's zone, and revoking one only after a confirmation."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.services import api_keys
from db.enums import Role
from db.models import ApiKey, AuditEvent
from db.session import system_session
from tests.factories import call, make_tenant, make_user
from tests.pages.conftest import LANDING_TITLES, Clinic, button, form_key, signed_in, texts


@pytest.fixture
def at(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://notify.clinic.example")
    app = signed_in(clinic.admin)
    app.switch_page("../pages/settings.py").run()
    assert not app.exception, app.exception
    assert "Appointments API" in [s.value for s in app.subheader]
    return app


def _keys(clinic: Clinic) -> list[ApiKey]:
    with system_session(clinic.engine) as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))
        session.expunge_all()
        return rows


def _actions(clinic: Clinic) -> list[str]:
    with system_session(clinic.engine) as session:
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("api_key.%"))
                                    .order_by(AuditEvent.created_at)))


def test_the_address_and_no_keys_yet(at: AppTest) -> None:
    assert "The API's address: https://notify.clinic.example/fhir" in texts(at.text)
    assert any("No keys yet" in t for t in texts(at.caption))
    assert not at.code


def test_a_new_key_is_shown_once_and_works(at: AppTest, clinic: Clinic) -> None:
    at.text_input(key="api_key_name").input("Clinic HIS")
    typed_in = at.text_input(key="api_key_name").id
    button(at, "Create key").click().run()
    assert not at.exception and not at.error, texts(at.error)
    [code] = at.code
    key = code.value
    assert key.startswith("ck_")
    assert any("shown only once" in t for t in texts(at.warning))
    assert any("Created the key Clinic HIS" in t for t in texts(at.success))
    found = api_keys.authenticate(clinic.engine, key)
    assert found is not None and found.tenant_id == clinic.admin.tenant_id
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["Clinic HIS"] and list(table["Key starts with"]) == [key[:11]]
    assert "Created (UTC)" not in table.columns and any("Created (Asia/Riyadh)" == c for c in table.columns)
    name = at.text_input(key=form_key(at, "api_key_new", "api_key_name"))
    assert name.value == "" and name.id != typed_in  # a new, empty box for the next key
    at.run()
    assert not at.code  # gone at the next interaction
    assert _actions(clinic) == ["api_key.create"]


def test_a_key_without_a_name_is_refused_and_nothing_made(at: AppTest, clinic: Clinic) -> None:
    button(at, "Create key").click().run()
    assert any("Give the key a name" in t for t in texts(at.error))
    assert _keys(clinic) == [] and not at.code


def test_a_refused_name_stays_in_the_box_to_be_corrected(at: AppTest, clinic: Clinic) -> None:
    call(clinic.engine, clinic.admin, api_keys.create, "Clinic HIS")
    at.text_input(key="api_key_name").input("Clinic HIS")
    button(at, "Create key").click().run()
    assert any("exists already" in t for t in texts(at.error))
    assert at.text_input(key="api_key_name").value == "Clinic HIS"


def test_revoking_asks_first_and_then_the_key_stops_working(at: AppTest, clinic: Clinic) -> None:
    _, key = call(clinic.engine, clinic.admin, api_keys.create, "Clinic HIS")
    at.run()
    at.button(key="api_key_revoke").click().run()
    assert any("Revoke Clinic HIS" in t for t in texts(at.warning))
    at.button(key="api_key_revoke_no").click().run()
    assert _keys(clinic)[0].revoked_at is None and api_keys.authenticate(clinic.engine, key) is not None
    at.button(key="api_key_revoke").click().run()
    at.button(key="api_key_revoke_yes").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert any("Revoked Clinic HIS" in t for t in texts(at.success))
    assert _keys(clinic)[0].revoked_at is not None and api_keys.authenticate(clinic.engine, key) is None
    assert _actions(clinic) == ["api_key.create", "api_key.revoke"]
    assert not [b for b in at.button if b.key == "api_key_revoke"]  # no live key left to revoke


def test_a_hostile_name_is_shown_as_text(at: AppTest, clinic: Clinic) -> None:
    call(clinic.engine, clinic.admin, api_keys.create, "[click](http://evil.example) **HIS**")
    at.run()
    assert list(at.dataframe[0].value["Name"]) == ["[click](http://evil.example) **HIS**"]
    at.button(key="api_key_revoke").click().run()
    assert any(r"\[click\]\(http" in t for t in texts(at.warning))


def test_another_clinics_keys_are_not_listed(at: AppTest, clinic: Clinic) -> None:
    other = make_tenant(clinic.engine, "clinic-b", "Al Noor Clinic")
    call(clinic.engine, make_user(clinic.engine, other, "amira-b"), api_keys.create, "Clinic HIS")
    at.run()
    assert any("No keys yet" in t for t in texts(at.caption))


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_front_desk_and_analysts_have_no_keys_section(clinic: Clinic, role: Role) -> None:
    at = signed_in(clinic.by_role(role))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/settings.py")
    at.run()
    assert at.title[0].value == LANDING_TITLES[role]
    assert "Appointments API" not in [s.value for s in at.subheader]
