"""In a real browser: the front desk and an admin correct a patient's mobile number on the Patients
page; an analyst has no Patients page; an admin saves the clinic profile on Settings.

Uses the module's running app (tests/browser/conftest.py): Sara Ali, +966501234567.
"""

from __future__ import annotations

import pytest

from db.enums import Role
from tests.browser.support import (
    BROWSER_MARKS,
    FAILED_PATIENT,
    USERS,
    assert_no_errors,
    menu,
    open_page,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS

# typed as a clerk would, and how the record then shows it (the front desk goes first)
NEW_NUMBER = {Role.FRONT_DESK: ("050 987 6543", "+966509876543"), Role.ADMIN: ("+966 55 123 4567", "+966551234567")}


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN])
def test_a_mobile_number_is_corrected_on_the_patients_page(page: sync_api.Page, app_url: str, role: Role) -> None:
    typed, stored = NEW_NUMBER[role]
    sign_in(page, app_url, USERS[role])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Patients")
    type_into(page, "Find a patient", FAILED_PATIENT)
    sync_api.expect(page.get_by_role("heading", name=FAILED_PATIENT)).to_be_visible()

    page.get_by_text("Correct contacts").click()
    type_into(page, "Mobile number", typed)
    page.get_by_role("button", name="Save contacts").click()
    sync_api.expect(page.get_by_text("Saved the mobile number.")).to_be_visible()
    settle(page)
    sync_api.expect(page.get_by_text(stored).first).to_be_visible()
    assert_no_errors(page, f"{role.value}: Patients after correcting the number")
    shot(page, f"{role.value}-patient-contacts")


def test_a_number_that_is_not_a_mobile_is_refused_in_words(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.FRONT_DESK])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Patients")
    type_into(page, "Find a patient", FAILED_PATIENT)
    page.get_by_text("Correct contacts").click()
    type_into(page, "Mobile number", "011 234 5678")
    page.get_by_role("button", name="Save contacts").click()
    sync_api.expect(page.get_by_text("is not a mobile number", exact=False)).to_be_visible()


def test_the_analyst_cannot_correct_contacts(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ANALYST])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    settle(page)
    assert "Patients" not in menu(page)
    page.goto(f"{app_url}/patients?q=Sara")
    settle(page)
    sync_api.expect(page.get_by_role("button", name="Save contacts")).to_have_count(0)
    sync_api.expect(page.get_by_label("Mobile number", exact=True)).to_have_count(0)


def test_the_admin_saves_the_clinic_profile(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ADMIN])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Settings")
    sync_api.expect(page.get_by_role("heading", name="Clinic profile")).to_be_visible()
    type_into(page, "Name in Arabic", "عيادة النور")
    type_into(page, "E-mail sender name", "Al Noor Reminders")
    page.get_by_role("button", name="Save profile").click()
    sync_api.expect(page.get_by_text("Saved the clinic profile.")).to_be_visible()
    settle(page)
    sync_api.expect(page.get_by_label("Name in Arabic", exact=True)).to_have_value("عيادة النور")
    assert page.get_by_text("CREDENTIALS_KEY").count() == 0
    assert_no_errors(page, "admin: Settings after saving the profile")
    shot(page, "admin-settings-profile")
