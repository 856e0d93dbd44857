"""In the browser: a bulk send is watched until it is completed, and its creator is told on their next
page (issue 19, point 4), as each role that may send one (the front desk's is a short list).

The app runs on the embedded default: the development outbox delivers each message after a moment
and the maintenance pass (every few seconds) completes the job.
"""

from __future__ import annotations

import pytest

from db.enums import Role
from tests.browser.support import (
    BROWSER_MARKS,
    USERS,
    assert_no_errors,
    open_page,
    open_tab,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS

NUMBERS = {Role.ADMIN: "+966501112255\n+966504445566", Role.FRONT_DESK: "+966507778899\n+966508889911"}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK])
def test_a_bulk_send_is_seen_to_completion_and_its_end_is_told(page: sync_api.Page, app_url: str, role: Role) -> None:
    sign_in(page, app_url, USERS[role])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Bulk send")
    page.get_by_text("A custom list (paste or upload)").click()
    settle(page)
    type_into(page, "Paste numbers or addresses (one per line)", NUMBERS[role])
    sync_api.expect(page.get_by_text("2 recipients ready")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 2 of 4: Content")).to_be_visible()
    settle(page)
    page.get_by_text("Custom text", exact=True).click()
    settle(page)
    type_into(page, "English text", f"Watched to the end by {role.label}.")
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.get_by_text("Step 3 of 4: Review")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Next").click()
    settle(page)
    page.get_by_role("button", name="Send", exact=True).click()
    sync_api.expect(page.get_by_text("Sending has started.")).to_be_visible()
    settle(page)

    open_tab(page, "Bulk jobs")
    completed = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Completed")
    sync_api.expect(completed.first).to_be_visible(timeout=60_000)  # the panel follows it by itself
    settle(page)
    # the panel that saw the end redraws the whole tab once: the buttons go with that rerun
    sync_api.expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    sync_api.expect(page.get_by_role("button", name="Cancel what is not sent")).to_have_count(0)
    assert_no_errors(page, "bulk job completed")
    shot(page, f"{role.value}-bulk-job-completed")

    open_page(page, "Dashboard")  # told by the next page view (the rerun that showed the end, or this one)
    notice = page.locator('[data-testid="stToast"]').filter(has_text="completed")
    sync_api.expect(notice.first).to_be_visible()
    assert "2 delivered" in notice.first.inner_text()
    shot(page, f"{role.value}-bulk-job-end-notice")
    notice.first.get_by_role("button").first.click()  # dismissed
    sync_api.expect(notice).to_have_count(0)
    open_page(page, "Messages")
    page.wait_for_timeout(1_000)
    assert page.locator('[data-testid="stToast"]').filter(has_text="completed").count() == 0, "told once"
