"""Full-page screenshots of the screens issue 19 looked at below the fold: the bulk review, a template's
Arabic preview, the audit log, the staff page and the messages list.

Each test drives the app as an admin to the screen, checks what the issue said was wrong, and saves
``tests/browser/screenshots/screen-<name>.png`` (the whole page, not only the first 900 px).
"""

from __future__ import annotations

from db.enums import Role
from tests.browser.support import (
    BROWSER_MARKS,
    USERS,
    assert_no_errors,
    choose,
    open_page,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS

ARABIC_BODY = "مرحبا {{ patient_name }}، موعدك في {{ appointment_date }}. للاستفسار اتصل على {{ clinic_phone }}"


def _signed_in(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.ADMIN])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_the_bulk_review_adds_up_and_the_confirm_step_names_what_is_sent(page: sync_api.Page,
                                                                            app_url: str) -> None:
    _signed_in(page, app_url)
    open_page(page, "Bulk send")
    page.get_by_text("A custom list (paste or upload)").click()
    settle(page)
    type_into(page, "Paste numbers or addresses (one per line)", "+966501112233\n+966504445566\nnot a number")
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 2 of 4: Content")).to_be_visible()
    settle(page)
    page.get_by_text("Custom text", exact=True).click()
    settle(page)
    type_into(page, "English text", "The clinic is closed on Sunday.")
    type_into(page, "Arabic text (optional)", "العيادة مغلقة يوم الأحد ٢٠٢٦-١٢-٠٦. اتصل على +966112345678")
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 3 of 4: Review")).to_be_visible()
    settle(page)
    assert_no_errors(page, "bulk review")
    metrics = page.locator('[data-testid="stMetric"]')
    sync_api.expect(metrics.filter(has_text="Recipients in the audience")).to_contain_text("3")
    sync_api.expect(metrics.filter(has_text="Will be sent")).to_contain_text("2")
    sync_api.expect(metrics.filter(has_text="Skipped")).to_contain_text("1")
    sync_api.expect(page.get_by_text("SMS / en")).to_have_count(0)
    shot(page, "screen-bulk-review")


def test_the_arabic_preview_uses_arabic_samples_and_keeps_numbers_in_order(page: sync_api.Page,
                                                                           app_url: str) -> None:
    _signed_in(page, app_url)
    open_page(page, "Templates")
    choose(page, "Open a template", "New template…")
    type_into(page, "English text", "Hello {{ patient_name }}, see you on {{ appointment_date }}.")
    type_into(page, "Arabic text (optional)", ARABIC_BODY)
    preview = page.locator('[class*="st-key-rtl-"]').last
    sync_api.expect(preview).to_contain_text("سارة")
    sync_api.expect(preview).to_have_css("text-align", "right")
    sync_api.expect(page.get_by_text("direction mark", exact=False).first).to_be_visible()
    assert_no_errors(page, "Arabic preview")
    shot(page, "screen-template-arabic-preview")


def test_the_audit_log_names_its_objects_and_labels_its_times(page: sync_api.Page, app_url: str) -> None:
    _signed_in(page, app_url)
    open_page(page, "Audit log")
    sync_api.expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
    assert_no_errors(page, "audit log")
    shot(page, "screen-audit-log")


def test_the_staff_page_offers_the_least_privileged_role_first(page: sync_api.Page, app_url: str) -> None:
    _signed_in(page, app_url)
    open_page(page, "Staff")
    add_form = page.locator('[data-testid="stForm"]').filter(has_text="Add a staff member")
    sync_api.expect(add_form).to_match_aria_snapshot('- combobox "Role": Analyst')
    sync_api.expect(page.get_by_text("never", exact=True).first).to_be_attached()
    assert_no_errors(page, "staff")
    shot(page, "screen-staff")


def test_the_messages_list_labels_its_times(page: sync_api.Page, app_url: str) -> None:
    _signed_in(page, app_url)
    open_page(page, "Messages")
    sync_api.expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    assert_no_errors(page, "messages")
    shot(page, "screen-messages")
