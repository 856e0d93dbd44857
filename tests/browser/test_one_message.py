"""In a real browser: one click opens a message where the eye is and it updates itself; one message
to one patient from the patient's page; as the front desk and as an admin.

Uses the module's running app (tests/browser/conftest.py): Sara Ali has a delivered and a failed
message. Deliveries run in the app's own process through the development outbox, which reports
her number delivered a few seconds after it is sent.
"""

from __future__ import annotations

import re

import pytest

from db.enums import Role
from tests.browser.support import (
    BROWSER_MARKS,
    FAILED_PATIENT,
    USERS,
    assert_no_errors,
    click_first_row,
    open_page,
    pick,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN])
def test_a_click_opens_the_message_in_view_and_a_retry_updates_itself(page: sync_api.Page, app_url: str,
                                                                     role: Role) -> None:
    sign_in(page, app_url, USERS[role])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Messages")
    pick(page, "Status", "Failed")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"status=failed"))
    settle(page)

    click_first_row(page)
    dialog = page.get_by_role("dialog")
    sync_api.expect(dialog.get_by_text("Error 30003", exact=False)).to_be_visible()
    sync_api.expect(dialog).to_be_in_viewport()
    page.wait_for_url(re.compile(r"message=[0-9a-f-]{36}"))
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0  # the error shown is the message's own
    shot(page, f"{role.value}-message-dialog")

    if role == Role.FRONT_DESK:  # the admin finds it retried already: the front desk did it
        dialog.get_by_role("button", name="Retry this message").click()
        sync_api.expect(dialog.get_by_role("button", name="Open the original")).to_be_visible()
        # No click after the retry: the dialog reads the new attempt again until it is delivered
        # (the development outbox reports it about 2 s after it was sent).
        sync_api.expect(dialog.get_by_role("heading", name=re.compile(r"SMS message · . Delivered"))).to_be_visible(
            timeout=60_000)
        sync_api.expect(dialog.get_by_text("updates itself")).to_have_count(0)
        shot(page, "front_desk-message-retried-live")

    dialog.locator('button[data-testid^="stBaseButton"]').filter(has_text=re.compile(r"Close$")).click()
    sync_api.expect(page.get_by_role("dialog")).to_have_count(0)
    assert "message=" not in page.url


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN])
def test_one_message_to_one_patient_from_the_patients_page(page: sync_api.Page, app_url: str, role: Role) -> None:
    sign_in(page, app_url, USERS[role])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Patients")
    type_into(page, "Find a patient", FAILED_PATIENT)
    sync_api.expect(page.get_by_role("heading", name=FAILED_PATIENT)).to_be_visible()

    page.get_by_text("Send a message to this patient").click()
    page.get_by_text("My own text").click()
    settle(page)
    type_into(page, "Text", f"Hello {{patient_first_name}}, please call us ({role.value}).")
    sync_api.expect(page.get_by_text(f"Hello Sara, please call us ({role.value}).")).to_be_visible()
    sync_api.expect(page.get_by_text("1 segment", exact=False)).to_be_visible()
    shot(page, f"{role.value}-send-one-preview")

    page.get_by_role("button", name="Send message").click()
    sync_api.expect(page.get_by_text(f"The message to {FAILED_PATIENT} is", exact=False)).to_be_visible()
    settle(page)
    assert_no_errors(page, "after sending one message")
    shot(page, f"{role.value}-send-one-sent")
