"""Smoke test in a real browser: the app as staff use it, one role at a time.

Starts ``python -m streamlit run app/streamlit_app.py`` against a fresh, migrated SQLite database
with one clinic, one user per role and a patient with a delivered and a failed message, then
drives Debian's Chromium with Playwright: sign in, check the menu, open every page, make sure no
error box appears, sign out; then the main path of each screen (a template version and a test
send, a retry, the Messages and audit CSV downloads, the bulk wizard up to its review).
Screenshots go to ``tests/browser/screenshots/<role>-<page>.png``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from app.services import message_export
from db.enums import Role
from tests.browser.support import (
    BROWSER_MARKS,
    FAILED_PATIENT,
    LANDING,
    PAGE_IS_DRAWN,
    USERS,
    assert_no_errors,
    choose,
    click_first_row,
    click_in_tab,
    menu,
    menu_of,
    open_page,
    open_tab,
    pick,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS


def test_the_sign_in_screen(page: sync_api.Page, app_url: str) -> None:
    page.goto(app_url)
    sync_api.expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    settle(page)

    assert_no_errors(page, "sign-in screen")
    sync_api.expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    shot(page, "login")


def test_a_signed_out_visitor_cannot_open_a_page_by_its_address(page: sync_api.Page, app_url: str) -> None:
    page.goto(f"{app_url}/staff")
    sync_api.expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    settle(page)

    sync_api.expect(page.get_by_role("heading", name="Staff", level=1)).to_have_count(0)
    sync_api.expect(page.get_by_text("Add a staff member")).to_have_count(0)


def test_a_wrong_password_is_refused(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, "amira", "not-the-password")

    sync_api.expect(page.locator('[data-testid="stAlertContentError"]')).to_contain_text("Wrong username or password.")
    sync_api.expect(page.get_by_role("button", name="Log out")).to_have_count(0)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_can_use_every_page_in_its_menu(page: sync_api.Page, app_url: str, role: Role) -> None:
    sign_in(page, app_url, USERS[role])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    sync_api.expect(page.get_by_role("heading", name=LANDING[role], level=1)).to_be_visible()
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sync_api.expect(sidebar).to_contain_text(role.label)
    sync_api.expect(sidebar).to_contain_text("Al Noor Clinic")

    expected = menu_of(role)
    assert menu(page) == (expected if len(expected) > 1 else [])

    for title in expected:
        if len(expected) > 1:
            page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).click()
        sync_api.expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
        if title in PAGE_IS_DRAWN:
            sync_api.expect(page.get_by_text(PAGE_IS_DRAWN[title], exact=True).first).to_be_visible()
        settle(page)
        assert_no_errors(page, f"{role.value} on {title}")
        shot(page, f"{role.value}-{title.lower().replace(' ', '-')}")

    page.get_by_role("button", name="Log out").click()
    sync_api.expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    sync_api.expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    sync_api.expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)


def test_admin_creates_a_template_saves_a_new_version_and_sends_a_test(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ADMIN])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Templates")

    choose(page, "Open a template", "New template…")
    type_into(page, "Code", "visit_reminder")
    type_into(page, "Name", "Visit reminder")
    type_into(page, "English text", "Hello {{ patient_name }}, see you tomorrow.")
    page.get_by_role("button", name="Save").click()
    sync_api.expect(page.get_by_text("Created visit_reminder (version 1).")).to_be_visible()
    settle(page)
    assert_no_errors(page, "after creating a template")

    type_into(page, "English text", "Hello {{ patient_name }}, see you at 9:00 tomorrow.", tab="Edit")
    type_into(page, "What changed (kept with the version, optional)", "time added", tab="Edit")
    click_in_tab(page, "Edit", "Save")
    settle(page)
    sync_api.expect(page.get_by_text("version 2", exact=False).first).to_be_visible()
    assert_no_errors(page, "after saving version 2")
    shot(page, "admin-template-version-2")

    type_into(page, "Send to (phone number)", "+966501234567", tab="Send a test")
    click_in_tab(page, "Send a test", "Send test")
    settle(page)
    open_tab(page, "Send a test")  # a slow rerun can redraw the tabs with the first one selected
    sync_api.expect(page.locator('[data-testid="stAlertContentSuccess"]').filter(
        has_text="Test message")).to_be_visible()
    settle(page)
    assert_no_errors(page, "after sending a test")
    shot(page, "admin-template-test-send")

    open_page(page, "Audit log")
    table = page.locator('[data-testid="stDataFrame"]')
    sync_api.expect(table).to_be_visible()
    page.get_by_role("button", name="Prepare CSV").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("audit-")
    assert_no_errors(page, "audit log")
    shot(page, "admin-audit-log")


def test_front_desk_finds_a_failed_message_and_retries_it(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.FRONT_DESK])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Messages")

    pick(page, "Status", "Failed")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"status=failed"))
    settle(page)
    click_first_row(page)  # one click on the row opens the message in a dialog
    sync_api.expect(page.get_by_text("Error 30003", exact=False)).to_be_visible()
    settle(page)
    shot(page, "front_desk-messages-failed")

    page.get_by_role("button", name="Retry this message").click()
    sync_api.expect(page.get_by_text("A new attempt is queued, linked to this message.")).to_be_visible()
    sync_api.expect(page.get_by_role("button", name="Open the original")).to_be_visible()
    settle(page)
    assert_no_errors(page, "after retrying a failed message")
    shot(page, "front_desk-messages-retried")


def test_analyst_downloads_the_messages_of_a_filter_as_csv(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ANALYST])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Messages")

    page.get_by_text("Export this filter as CSV").click()
    download_button = page.get_by_role("button", name="Download CSV")
    for _ in range(3):  # a click that lands while a late rerun redraws the page is lost: click again
        page.get_by_role("button", name="Prepare CSV").click()
        settle(page)
        try:
            download_button.wait_for(state="visible", timeout=10_000)
            break
        except sync_api.TimeoutError:
            continue
    with page.expect_download() as download:
        download_button.click()
    assert download.value.suggested_filename.startswith("messages-")
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(message_export.BOM)
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == [message_export.EXPORT_COLUMNS[key].header for key in message_export.DEFAULT_COLUMNS]
    assert FAILED_PATIENT in data.decode("utf-8-sig")
    assert_no_errors(page, "messages export")
    shot(page, "analyst-messages-export")


def test_admin_walks_the_bulk_wizard_to_the_review_without_sending(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ADMIN])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Bulk send")

    page.get_by_text("A custom list (paste or upload)").click()
    settle(page)
    type_into(page, "Paste numbers or addresses (one per line)", "+966501112233\n+966504445566\nnot a number")
    sync_api.expect(page.get_by_text("2 recipients ready; 1 row refused.")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 2 of 4: Content")).to_be_visible()
    settle(page)

    page.get_by_text("Custom text", exact=True).click()
    settle(page)
    type_into(page, "English text", "The clinic is closed on Sunday.")
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 3 of 4: Review")).to_be_visible()
    sync_api.expect(page.get_by_text("Recipients in the audience")).to_be_visible()
    settle(page)
    assert_no_errors(page, "bulk review")
    sync_api.expect(page.get_by_text("The clinic is closed on Sunday.").first).to_be_visible()
    shot(page, "admin-bulk-review")
