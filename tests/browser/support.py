"""What the browser tests share: the Chromium they drive, the app's test clinic and the steps a
user takes (sign in, open a page, pick, type, wait for the script run). Fixtures are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.permissions import Actor
from app.ui import navigation
from db.enums import Role
from tests.factories import DEFAULT_PASSWORD

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
BROWSER_MARKS = [  # every browser test module: pytestmark = BROWSER_MARKS
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
sync_api.expect.set_options(timeout=TIMEOUT_MS)

USERS = {Role.ADMIN: "amira", Role.FRONT_DESK: "fatima", Role.ANALYST: "omar"}
FAILED_PATIENT = "Sara Ali"  # the fixture gives her one delivered and one failed message
LANDING = {Role.ADMIN: "Dashboard", Role.FRONT_DESK: "Dashboard", Role.ANALYST: "Analytics"}


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


def menu_of(role: Role) -> list[str]:
    """The titles ``role`` should see, straight from the menu table (new pages are visited too)."""
    stand_in = Actor(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), username="x", display_name="X", role=role)
    return navigation.menu_titles(stand_in)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a started app: terminate, and kill if it has not ended within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


@contextlib.contextmanager
def running_app(database_url: str, folder: Path) -> Iterator[str]:
    """``streamlit run`` the app on ``database_url`` at a free local port until the block ends; its URL."""
    port = _free_port()
    log = folder / "streamlit.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log)
        yield url
    finally:
        stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


# Streamlit scrolls inside its own containers, not the document, so a "full page" screenshot would
# stop at the viewport: ``shot`` measures the tallest scrolling area and grows the viewport to it.
_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...Array.from(document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], '
        + '[data-testid="stAppScrollToBottomContainer"], [data-testid="stSidebarContent"], section'))
        .map(el => el.scrollHeight))"""
MAX_SHOT_HEIGHT = 12_000


def shot(page: sync_api.Page, name: str) -> None:
    """A screenshot of the whole page, below the fold included (the viewport is restored after)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    viewport = page.viewport_size or {"width": 1400, "height": 900}
    height = min(int(page.evaluate(_CONTENT_HEIGHT_JS)), MAX_SHOT_HEIGHT)
    if height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(300)  # let the app lay itself out at the new size
    try:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    finally:
        if height > viewport["height"]:
            page.set_viewport_size(viewport)


def menu(page: sync_api.Page) -> list[str]:
    """The page titles in the sidebar menu (Streamlit hides the menu when there is only one page)."""
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    return [text.strip() for text in links.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()]


def sign_in(page: sync_api.Page, url: str, username: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto(url)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


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


def pick(page: sync_api.Page, label: str, option: str) -> None:
    """Add the first option containing ``option`` to the multiselect labelled ``label``."""
    settle(page)
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first.locator("input")
    box.click()
    box.fill(option)
    page.get_by_role("option").filter(has_text=option).first.click()
    box.press("Escape")
    settle(page)


ROW_HEIGHT = 35  # Streamlit's default table row (and header) height, in pixels


def click_first_row(page: sync_api.Page, attempts: int = 3) -> None:
    """Click a cell of the first row of the results table (drawn on a canvas); a late rerun that redraws
    the table meanwhile swallows the click, so click again until the dialog opens."""
    for attempt in range(attempts):
        settle(page)
        table = page.locator('[data-testid="stDataFrame"]').first
        try:
            table.scroll_into_view_if_needed(timeout=5_000)
            box = table.bounding_box(timeout=5_000)
            assert box is not None
            page.mouse.click(box["x"] + 120, box["y"] + ROW_HEIGHT + ROW_HEIGHT / 2)
            page.get_by_role("dialog").wait_for(timeout=10_000)
            return
        except sync_api.Error:
            if attempt == attempts - 1:
                raise
