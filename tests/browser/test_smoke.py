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
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services import message_export
from app.services.permissions import Actor
from app.ui import navigation
from db.enums import Role
from db.migrate import upgrade
from db.session import make_engine
from tests.factories import DEFAULT_PASSWORD, make_message, make_patient, make_tenant, make_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TIMEOUT_MS = 30_000

if not Path(CHROMIUM).exists() and os.environ.get("REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"REQUIRE_BROWSER=1 but there is no Chromium at {CHROMIUM} (apt-get install chromium)")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
sync_api.expect.set_options(timeout=TIMEOUT_MS)

USERS = {Role.ADMIN: "amira", Role.FRONT_DESK: "fatima", Role.ANALYST: "omar"}
FAILED_PATIENT = "Sara Ali"  # the fixture gives her one delivered and one failed message
LANDING = {Role.ADMIN: "Dashboard", Role.FRONT_DESK: "Dashboard", Role.ANALYST: "Analytics"}


def menu_of(role: Role) -> list[str]:
    """The titles ``role`` should see, straight from the menu table (new pages are visited too)."""
    stand_in = Actor(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), username="x", display_name="X", role=role)
    return navigation.menu_titles(stand_in)


# Optional: something a page draws last, so its screenshot shows the whole page. A page not listed
# here is still visited; the test then waits for its title and for the script run to finish.
PAGE_IS_DRAWN = {
    "Dashboard": "Bulk jobs in progress",
    "Analytics": "Bulk jobs",
    "Messages": "Select messages on this page",
    "Patients": "Find a patient",
    "Templates": "Search by code or name",
    "Staff": "Change an account",
    "Bulk send": "Step 1 of 4: Audience",
    "Audit log": "Prepare CSV",
    "Settings": "Default country for local numbers",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 - local
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not become healthy within {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The running app, against its own migrated database holding one clinic and one user per role."""
    folder = tmp_path_factory.mktemp("browser")
    database_url = f"sqlite:///{folder / 'clinic.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    tenant_id = make_tenant(engine, "al-noor", "Al Noor Clinic")
    for role, username in USERS.items():
        make_user(engine, tenant_id, username, role)
    patient_id = make_patient(engine, tenant_id, name_en=FAILED_PATIENT, phone="+966501234567")
    make_message(engine, tenant_id, recipient="+966501234567", patient_id=patient_id, body="See you tomorrow.")
    make_message(engine, tenant_id, recipient="+966501234567", patient_id=patient_id, status="failed",
                 error_code="30003", body="Your results are ready.")
    engine.dispose()

    port = _free_port()
    log = folder / "streamlit.log"
    env = {**os.environ, "DATABASE_URL": database_url}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def settle(page: sync_api.Page) -> None:
    """Wait until the script run has finished (the 'running' indicator is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    page.wait_for_load_state("networkidle")


def assert_no_errors(page: sync_api.Page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert exceptions.count() == 0, f"{where}: exception shown: {exceptions.all_inner_texts()}"
    assert errors.count() == 0, f"{where}: error shown: {errors.all_inner_texts()}"


def shot(page: sync_api.Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def menu(page: sync_api.Page) -> list[str]:
    """The page titles in the sidebar menu (Streamlit hides the menu when there is only one page)."""
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    return [text.strip() for text in links.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()]


def sign_in(page: sync_api.Page, url: str, username: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto(url)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


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


def open_page(page: sync_api.Page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).click()
    sync_api.expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    settle(page)


def open_tab(page: sync_api.Page, name: str) -> None:
    """Select a tab (after a rerun the previous run's tabs may linger in the page for a moment)."""
    settle(page)
    page.locator('[data-stale="false"] [role="tab"], [role="tab"]').filter(has_text=name).last.click()


def click_in_tab(page: sync_api.Page, tab: str, button: str, attempts: int = 4) -> None:
    """Click ``button`` on ``tab``; a slow rerun that lands meanwhile shows the first tab again (the
    button is then hidden), so select the tab again and retry."""
    for attempt in range(attempts):
        open_tab(page, tab)
        try:
            page.get_by_role("button", name=button).click(timeout=7_500)
            return
        except sync_api.TimeoutError:
            if attempt == attempts - 1:
                raise


def type_into(page: sync_api.Page, label: str, text: str, *, tab: str | None = None) -> None:
    """Fill a text box (on ``tab``) and leave it, so Streamlit applies the value before the next click."""
    if tab:  # a rerun may show the first tab again
        open_tab(page, tab)
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.blur()
    settle(page)


def choose(page: sync_api.Page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label`` (type to filter, then Enter)."""
    settle(page)
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.locator("input")
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option).first.wait_for()
    box.press("Enter")
    settle(page)


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


def pick(page: sync_api.Page, label: str, option: str) -> None:
    """Add the first option containing ``option`` to the multiselect labelled ``label``."""
    settle(page)
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first.locator("input")
    box.click()
    box.fill(option)
    page.get_by_role("option").filter(has_text=option).first.click()
    box.press("Escape")
    settle(page)


def test_front_desk_finds_a_failed_message_and_retries_it(page: sync_api.Page, app_url: str) -> None:
    sign_in(page, app_url, USERS[Role.FRONT_DESK])
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    open_page(page, "Messages")

    pick(page, "Status", "Failed")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"status=failed"))
    settle(page)
    pick(page, "Select messages on this page", FAILED_PATIENT)
    open_button = page.locator('button[data-testid^="stBaseButton"]').filter(has_text=re.compile(r"Open$"))
    sync_api.expect(open_button).to_be_enabled()
    open_button.click()
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
