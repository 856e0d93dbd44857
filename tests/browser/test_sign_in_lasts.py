"""Sign-in that lasts, in a real browser against the running app (issue 19): a reload and a new tab
stay signed in, a link opens what it names (query string included) in a new tab and, when signed
out, right after signing in; signing out in one tab signs the other out at its next click; a page a
role may not open says so. Each role."""

from __future__ import annotations

import re

import pytest

from app.services.staff_sessions import COOKIE_NAME
from db.enums import Role
from tests.browser.support import BROWSER_MARKS, LANDING, USERS, assert_no_errors, settle, sign_in, sync_api

pytestmark = BROWSER_MARKS

expect = sync_api.expect
# A deep link: the Patients page, searching; the analyst has no Patients page and is told so.
PATIENT_LINK = "/patients?q=Sara"
MESSAGES_LINK = "/messages?status=failed"


def session_cookie(context: sync_api.BrowserContext) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE_NAME), None)


def wait_for_cookie(page: sync_api.Page, present: bool = True) -> dict | None:
    """The browser sets (drops) the cookie a moment after the run that signed in (out)."""
    for _ in range(300):
        cookie = session_cookie(page.context)
        if (cookie is not None) == present:
            return cookie
        page.wait_for_timeout(100)
    pytest.fail(f"the session cookie is {'missing' if present else 'still there'}")


def landed_on(page: sync_api.Page, title: str) -> None:
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    settle(page)
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    assert_no_errors(page, f"{title} at {page.url}")


def sees_the_patient_link(page: sync_api.Page, role: Role) -> None:
    if role == Role.ANALYST:
        expect(page.get_by_text(f"Your role ({role.label}) cannot open Patients.")).to_be_visible()
        settle(page)
        return
    landed_on(page, "Patients")
    expect(page.get_by_label("Find a patient", exact=True)).to_have_value("Sara")
    assert "q=Sara" in page.url


def sign_in_form(page: sync_api.Page) -> None:
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    expect(page.get_by_text("Page not found")).to_have_count(0)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_a_reload_a_new_tab_and_a_link_stay_signed_in_until_signing_out(
    app_url: str, page: sync_api.Page, role: Role,
) -> None:
    sign_in(page, app_url, USERS[role])
    landed_on(page, LANDING[role])
    cookie = wait_for_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie").find(COOKIE_NAME) == -1  # no script of the page can read it

    page.reload()
    landed_on(page, LANDING[role])

    second = page.context.new_page()  # a link opened in a new tab
    second.goto(app_url + MESSAGES_LINK)
    landed_on(second, "Messages")
    assert "status=failed" in second.url
    second.goto(app_url + PATIENT_LINK)
    sees_the_patient_link(second, role)
    if role != Role.ANALYST:  # the patient's page links to their messages: a new tab, still signed in
        with second.context.expect_page() as opened:
            second.get_by_role("link", name="Open all of them in Messages").click()
        landed_on(opened.value, "Messages")
        assert "patient=" in opened.value.url
        opened.value.close()

    page.get_by_role("button", name="Log out").click()
    sign_in_form(page)
    wait_for_cookie(page, present=False)  # the browser dropped it

    # The other tab is signed out at its next click (it still shows the page it had)
    second.locator('[data-testid="stSidebarNavLink"]').first.click()
    sign_in_form(second)
    expect(second.get_by_text("You were signed out (in another tab or window).")).to_be_visible()
    second.reload()
    sign_in_form(second)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_a_link_opened_while_signed_out_opens_right_after_signing_in(
    app_url: str, page: sync_api.Page, role: Role,
) -> None:
    page.goto(app_url + PATIENT_LINK)
    sign_in_form(page)
    assert re.search(r"/patients\?q=Sara$", page.url), page.url  # the address stays as opened

    page.get_by_label("Username", exact=True).fill(USERS[role])
    page.get_by_label("Password", exact=True).fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()

    sees_the_patient_link(page, role)
    wait_for_cookie(page)
    page.reload()
    sees_the_patient_link(page, role)
