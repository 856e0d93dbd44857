"""Home: who am I, which clinic, and the clinic's headline numbers."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.text import plain
from db.enums import Role
from tests.factories import make_patient
from tests.pages.conftest import Clinic, button, signed_in


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_shows_who_is_signed_in_and_the_clinic(clinic: Clinic) -> None:
    at = signed_in(clinic.front_desk)

    intro = at.main.markdown[0].value
    assert plain("fatima") in intro
    assert "Front desk" in intro
    assert "Al Noor Clinic" in intro


def test_home_shows_the_headline_counts(clinic: Clinic) -> None:
    make_patient(clinic.engine, clinic.admin.tenant_id)
    make_patient(clinic.engine, clinic.admin.tenant_id, name_en="Omar Z", phone="+966501234568")

    at = signed_in(clinic.analyst)

    assert metrics(at) == {
        "Patients": "2",
        "Staff": "3",
        "Active templates": "0",
        "In progress": "0",
        "Messages": "0",
        "Delivered": "0",
        "Failed": "0",
        "Success rate": "—",
    }
    assert not at.error


def test_refresh_reads_the_numbers_again(clinic: Clinic) -> None:
    at = signed_in(clinic.admin)
    assert metrics(at)["Patients"] == "0"

    make_patient(clinic.engine, clinic.admin.tenant_id)
    button(at, "Refresh").click().run()

    assert metrics(at)["Patients"] == "1"


def test_admin_pauses_and_resumes_sending_for_the_clinic(clinic: Clinic) -> None:
    at = signed_in(clinic.admin)
    at.checkbox(key="pause_confirm").check().run()
    at.text_input(key="pause_reason").input("wrong reminder text").run()
    next(b for b in at.button if b.label == "Pause all sending").click().run()
    assert any("Sending is paused" in e.value for e in at.error)
    from app.services.messaging import MessagingService

    assert MessagingService(clinic.engine).is_paused(clinic.admin.tenant_id)
    next(b for b in at.button if b.label == "Resume sending").click().run()
    assert not MessagingService(clinic.engine).is_paused(clinic.admin.tenant_id)
    assert not any("Sending is paused" in e.value for e in at.error)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_see_the_emergency_stop_but_everyone_sees_the_pause(clinic: Clinic, role: Role) -> None:
    from app.services.messaging import MessagingService

    MessagingService(clinic.engine).pause_sending(clinic.admin.tenant_id, actor=clinic.admin)
    at = signed_in(clinic.by_role(role))
    assert not [b for b in at.button if b.label == "Pause all sending" or b.label == "Resume sending"]
    assert any("Sending is paused" in e.value for e in at.error)
