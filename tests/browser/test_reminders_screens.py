"""In a real browser, on the demo clinics: the screens of issue 20 (appointment reminders and replies).

The module's app runs on its own SQLite file filled by ``python -m app seed-demo`` (what ``make run``
shows), signed in as Al Noor Clinic's demo staff: the admin's Appointments (the upcoming list with each
appointment's reminders; an upload reviewed, then applied), Reminders (rules, the calendar's coming
holidays, the schedule's preview of an Arabic reminder) and Settings → Appointments API (a key shown
once); the front desk's Inbox (an unread Arabic thread opened, assigned, answered inside WhatsApp's 24
hours and marked done; a thread outside them offers only approved templates); the analyst's
"Reminders and replies" and a menu without the front desk's screens.

Full-page screenshots go to ``tests/browser/screenshots/reminders-<name>.png``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.demo import DEMO_PASSWORD
from db.enums import Channel, Language, ReminderStatus
from db.models import Appointment, AppointmentReminder, Patient, ReminderRule, Tenant, User
from db.session import make_engine, system_session
from tests.browser.support import (
    BROWSER_MARKS,
    ROOT,
    ROW_HEIGHT,
    assert_no_errors,
    choose,
    menu,
    open_page,
    open_tab,
    pick,
    running_app,
    settle,
    shot,
    sign_in,
    sync_api,
    type_into,
)

pytestmark = BROWSER_MARKS

ADMIN, FRONT_DESK, ANALYST = "alnoor.admin", "alnoor.frontdesk", "alnoor.analyst"
CLINIC = "alnoor"
RIYADH = ZoneInfo("Asia/Riyadh")
ARABIC = re.compile(r"[\u0600-\u06FF]")
# The demo's current inbox (app.demo.content.INBOX_SCENES): unread Arabic questions inside and outside
# WhatsApp's 24 hours.
INSIDE_WINDOW = "ممكن موعد ثاني لو سمحت"
OUTSIDE_WINDOW = "هل تحتاج التحاليل صيام"


@dataclass(frozen=True)
class Demo:
    url: str
    database_url: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The app on a fresh SQLite file holding the demo clinics (``python -m app seed-demo``)."""
    folder = tmp_path_factory.mktemp("reminders-demo")
    database_url = f"sqlite:///{folder / 'clinic.db'}"
    env = {**os.environ, "DATABASE_URL": database_url}
    seeded = subprocess.run([sys.executable, "-m", "app", "seed-demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    with running_app(database_url, folder) as url:
        yield Demo(url, database_url)


def _signed_in(page: sync_api.Page, demo: Demo, username: str) -> None:
    sign_in(page, demo.url, username, DEMO_PASSWORD)
    sync_api.expect(page.get_by_role("button", name="Log out")).to_be_visible()
    settle(page)


def _table(page: sync_api.Page, nth: int = 0) -> sync_api.Locator:
    """The nth table on the page, once its cells are drawn (its accessible copy holds the visible cells)."""
    table = page.locator('[data-testid="stDataFrame"]').nth(nth)
    table.locator('[role="gridcell"]').first.wait_for(state="attached")
    return table


def _cells(table: sync_api.Locator) -> list[str]:
    return table.locator('[role="gridcell"]').all_inner_texts()


def _headers(table: sync_api.Locator) -> list[str]:
    return [text.strip() for text in table.locator('[role="columnheader"]').all_inner_texts()]


def _metric(page: sync_api.Page, label: str) -> sync_api.Locator:
    """The value of the metric labelled exactly ``label`` ("Changed" is not "Unchanged")."""
    named = page.locator('[data-testid="stMetricLabel"]').filter(has_text=re.compile(rf"^{re.escape(label)}$"))
    return page.locator('[data-testid="stMetric"]').filter(has=named).locator('[data-testid="stMetricValue"]')


def _right_to_left(block: sync_api.Locator) -> None:
    sync_api.expect(block).to_have_css("direction", "rtl")
    sync_api.expect(block).to_have_css("text-align", "right")


def _open_thread(page: sync_api.Page, text: str, attempts: int = 3) -> None:
    """Click the Inbox row whose last reply holds ``text`` (the table is drawn on a canvas: the row's place
    comes from its accessible copy); a late rerun that redraws the table swallows a click, so retry."""
    before = page.url
    for attempt in range(attempts):
        settle(page)
        table = _table(page)
        try:
            row = table.locator('[role="row"]').filter(has_text=text).first
            index = int(row.get_attribute("aria-rowindex", timeout=5_000) or 0)  # the header row is 1
            table.scroll_into_view_if_needed(timeout=5_000)
            box = table.bounding_box(timeout=5_000)
            assert box is not None and index > 1
            page.mouse.click(box["x"] + 160, box["y"] + (index - 1) * ROW_HEIGHT + ROW_HEIGHT / 2)
            page.wait_for_url(lambda url: "thread=" in url and url != before, timeout=10_000)
            sync_api.expect(page.get_by_role("button", name="Close the thread")).to_be_visible(timeout=10_000)
            settle(page)
            return
        except sync_api.Error:
            if attempt == attempts - 1:
                raise


def _arabic_reminder_to_preview(demo: Demo) -> tuple[str, str]:
    """(patient's name, rule) of a coming WhatsApp reminder to an Arabic-speaking patient of the clinic,
    among the first of the schedule and not due in the next half hour (the app may send it meanwhile)."""
    engine = make_engine(demo.database_url)
    now = dt.datetime.now(dt.UTC)
    try:
        with system_session(engine) as session:
            rows = session.execute(
                select(Patient.name_en, Patient.language, ReminderRule.name, ReminderRule.channel)
                .select_from(AppointmentReminder)
                .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
                .join(Patient, Patient.id == Appointment.patient_id)
                .join(ReminderRule, ReminderRule.id == AppointmentReminder.rule_id)
                .join(Tenant, Tenant.id == Patient.tenant_id)
                .where(Tenant.slug == CLINIC, AppointmentReminder.status == ReminderStatus.PENDING,
                       AppointmentReminder.due_at > now)
                .order_by(AppointmentReminder.due_at, AppointmentReminder.id).limit(40)).all()
    finally:
        engine.dispose()
    # the first minutes' reminders may be sent while the test runs: look past them
    for name, language, rule, channel in rows[5:]:
        if language == Language.AR and channel == Channel.WHATSAPP and name:
            return name, rule
    pytest.fail("the demo has no coming WhatsApp reminder to an Arabic-speaking patient on the schedule's first page")


def _display_name(demo: Demo, username: str) -> str:
    engine = make_engine(demo.database_url)
    try:
        with system_session(engine) as session:
            return session.scalar(select(User.display_name).join(Tenant, Tenant.id == User.tenant_id)
                                  .where(Tenant.slug == CLINIC, User.username == username)) or ""
    finally:
        engine.dispose()


# --- admin: Appointments ---------------------------------------------------------------------------


def test_admin_sees_each_coming_appointment_with_its_reminders(page: sync_api.Page, demo: Demo) -> None:
    _signed_in(page, demo, ADMIN)
    open_page(page, "Appointments")
    table = _table(page)
    headers = _headers(table)
    assert "Start (Asia/Riyadh)" in headers and "Reminders (Asia/Riyadh)" in headers, headers
    cells = _cells(table)
    assert any(re.search(r"WhatsApp 24 h before: (sent|pending)", cell) for cell in cells), cells
    assert any(ARABIC.search(cell) for cell in cells)  # the patients' Arabic names
    assert not any(cell.strip() in {"None", "nan"} for cell in cells)
    assert_no_errors(page, "appointments, upcoming")
    shot(page, "reminders-appointments-upcoming")

    pick(page, "Status", "Confirmed")  # a filter changes what is listed
    statuses: list[str] = []
    for _ in range(30):  # the rerun may start after pick() saw the page settled (a loaded machine)
        statuses = [cell for cell in _cells(_table(page)) if cell in {"Booked", "Confirmed", "Cancelled"}]
        if statuses and set(statuses) == {"Confirmed"}:
            break
        page.wait_for_timeout(500)
    assert statuses and set(statuses) == {"Confirmed"}, statuses


def test_admin_uploads_appointments_reviews_them_and_applies(page: sync_api.Page, demo: Demo,
                                                            tmp_path: Path) -> None:
    day = (dt.datetime.now(RIYADH) + dt.timedelta(days=3)).date().isoformat()
    upload = tmp_path / "appointments.csv"
    upload.write_text(
        "source_id,patient_mrn,date,time,appointment_type,department,doctor,doctor_ar,patient_name,"
        "patient_name_ar,phone,language\n"
        f"BT-20-1,BT-MRN-1,{day},09:30,Check-up,Family Medicine,Dr. Ahmed Al-Harbi,,Faisal Test,,0501112211,en\n"
        f"BT-20-2,BT-MRN-2,{day},10:00,Follow-up,Pediatrics,,د. نورة القحطاني,Noura Test,نورة اختبار,0501112244,ar\n"
        f"BT-20-3,BT-MRN-3,{day},10:30,Consultation,Internal Medicine,Dr. Khalid Al-Ghamdi,,Salem Test,,"
        "0501112255,en\n"
        "BT-20-4,BT-MRN-4,31/02/2026,11:00,Check-up,Family Medicine,,,Majed Test,,0501112266,en\n",
        encoding="utf-8",
    )
    _signed_in(page, demo, ADMIN)
    open_page(page, "Appointments")
    open_tab(page, "Upload")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(upload)

    sync_api.expect(page.get_by_text("appointments.csv: 4 appointments read", exact=False)).to_be_visible()
    settle(page)
    sync_api.expect(_metric(page, "New")).to_have_text("3")
    sync_api.expect(_metric(page, "Refused")).to_have_text("1")
    sync_api.expect(_metric(page, "Changed")).to_have_text("0")
    sync_api.expect(page.get_by_text("3 new patients will be added.")).to_be_visible()
    sync_api.expect(page.get_by_role("heading", name="Refused: 1, and why")).to_be_visible()
    page.get_by_text("New: the first 3").click()  # what will be written, row by row
    sync_api.expect(page.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(
        has_text="BT-MRN-2")).to_have_count(1)
    refused = _cells(_table(page, -1))  # the first table is the column help, folded
    assert "5" in refused and "BT-20-4" in refused, refused  # row 5 of the file (its header is row 1)
    assert any("could not be read" in cell for cell in refused), refused
    assert_no_errors(page, "upload review")
    shot(page, "reminders-appointments-upload-review")

    page.get_by_role("button", name="Apply 3 changes").click()
    sync_api.expect(page.get_by_text("Applied: 3 new, 0 changed, 0 cancelled, 0 unchanged.")).to_be_visible()
    settle(page)
    sync_api.expect(page.get_by_text("1 row of the last upload was refused and not saved.")).to_be_visible()
    assert_no_errors(page, "upload applied")
    shot(page, "reminders-appointments-upload-applied")

    open_tab(page, "Upcoming")  # the new appointment is listed, with the reminders the rules planned for it
    type_into(page, "Patient name or MRN", "BT-MRN-2", tab="Upcoming")
    sync_api.expect(page.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(
        has_text="Noura Test")).to_have_count(1)
    cells = _cells(_table(page))
    assert any("نورة اختبار" in cell for cell in cells), cells
    assert any("WhatsApp 24 h before: pending" in cell for cell in cells), cells
    assert_no_errors(page, "upcoming after the upload")
    engine = make_engine(demo.database_url)  # the Arabic doctor's name is kept as written
    try:
        with system_session(engine) as session:
            doctor = session.scalar(select(Appointment.doctor_name_ar).where(Appointment.source_id == "BT-20-2"))
    finally:
        engine.dispose()
    assert doctor == "د. نورة القحطاني"


# --- admin: Reminders ------------------------------------------------------------------------------


def test_admin_reads_the_rules_the_calendar_and_an_arabic_reminder_before_it_goes(page: sync_api.Page,
                                                                                 demo: Demo) -> None:
    patient, rule = _arabic_reminder_to_preview(demo)
    _signed_in(page, demo, ADMIN)
    open_page(page, "Reminders")
    rules = _cells(_table(page))
    assert "WhatsApp 24 h before" in rules and "SMS 3 h before" in rules, rules
    assert_no_errors(page, "reminder rules")
    shot(page, "reminders-rules")

    open_tab(page, "Calendar")
    sync_api.expect(page.get_by_role("heading", name="Public holidays of the coming year")).to_be_visible()
    settle(page)
    holidays = _cells(_table(page))
    assert any("Eid al-Fitr" in cell for cell in holidays), holidays
    sync_api.expect(page.get_by_text("Ramadan (Umm al-Qura):", exact=False)).to_be_visible()
    assert_no_errors(page, "clinic calendar")
    shot(page, "reminders-calendar")

    open_tab(page, "Schedule")
    settle(page)
    headers = _headers(_table(page))
    assert "Due (Asia/Riyadh)" in headers and "Appointment (Asia/Riyadh)" in headers, headers
    choose(page, "Preview a reminder", f"{patient} · {rule}")
    sync_api.expect(page.get_by_text(re.compile(r"^WhatsApp to \+966\d+ · Arabic · due .+ \(Asia/Riyadh\)$"))
                    ).to_be_visible()
    preview = page.locator('[class*="st-key-rtl-"]').last
    sync_api.expect(preview).to_contain_text(ARABIC)
    _right_to_left(preview)
    assert "{{" not in preview.inner_text()  # every variable filled in
    assert_no_errors(page, "reminder preview")
    shot(page, "reminders-schedule-preview")


# --- admin: Settings → Appointments API -------------------------------------------------------------


def test_admin_creates_an_api_key_shown_once(page: sync_api.Page, demo: Demo) -> None:
    _signed_in(page, demo, ADMIN)
    open_page(page, "Settings")
    sync_api.expect(page.get_by_text("No keys yet", exact=False)).to_be_visible()
    type_into(page, "Name of the system that will use the key", "Clinic HIS")
    page.get_by_role("button", name="Create key").click()

    sync_api.expect(page.get_by_text("it is shown only once", exact=False)).to_be_visible()
    key = page.locator('[data-testid="stCode"]').filter(has_text=re.compile(r"\S{20,}"))
    sync_api.expect(key).to_have_count(1)
    secret = key.inner_text().strip()
    settle(page)
    keys = _table(page, -1)
    assert "Clinic HIS" in _cells(keys) and any(secret.startswith(cell) for cell in _cells(keys) if cell), \
        _cells(keys)
    sync_api.expect(page.get_by_text("No keys yet", exact=False)).to_have_count(0)
    sync_api.expect(page.get_by_label("Name of the system that will use the key", exact=True)).to_have_value("")
    assert_no_errors(page, "API key created")
    shot(page, "reminders-settings-api-key")

    open_page(page, "Dashboard")
    open_page(page, "Settings")  # shown once: gone on the next visit, the key's start still listed
    sync_api.expect(page.get_by_text("Revoke key…")).to_be_visible()
    assert page.get_by_text(secret).count() == 0


# --- front desk: Inbox -----------------------------------------------------------------------------


def test_front_desk_answers_an_arabic_question_and_meets_the_24_hour_rule(page: sync_api.Page,
                                                                         demo: Demo) -> None:
    me = _display_name(demo, FRONT_DESK)
    _signed_in(page, demo, FRONT_DESK)
    open_page(page, "Inbox")
    unread_before = page.get_by_text(re.compile(r"^\d+ unread repl(y|ies) · times in Asia/Riyadh$"))
    sync_api.expect(unread_before).to_be_visible()
    before = int(unread_before.inner_text().split()[0])
    assert before >= 2
    threads = _cells(_table(page))
    assert any(INSIDE_WINDOW in cell for cell in threads) and any(OUTSIDE_WINDOW in cell for cell in threads)
    assert not any(cell.strip() in {"None", "nan"} for cell in threads), threads
    settle(page)
    assert_no_errors(page, "inbox")
    shot(page, "reminders-inbox")

    _open_thread(page, INSIDE_WINDOW)
    sync_api.expect(page.get_by_text(f"{before - 1} unread", exact=False)).to_be_visible()  # opening reads it
    question = page.locator('[data-testid="stChatMessage"] [class*="st-key-rtl-"]').filter(has_text=INSIDE_WINDOW)
    sync_api.expect(question).to_have_count(1)
    _right_to_left(question)
    sync_api.expect(page.get_by_text(re.compile(r"^Open · assigned to nobody · waiting since "))).to_be_visible()
    sync_api.expect(page.get_by_text("Free text can be sent until", exact=False)).to_be_visible()
    assert_no_errors(page, "an Arabic thread opened")
    shot(page, "reminders-inbox-thread")

    choose(page, "Assign to", me)
    page.get_by_role("button", name="Assign").click()
    sync_api.expect(page.get_by_text(f"Assigned to {me}.")).to_be_visible()
    sync_api.expect(page.get_by_text(re.compile(rf"^Open · assigned to {re.escape(me)} · "))).to_be_visible()

    answer = "أهلاً، نعم نقدر نغير الموعد. بنتصل عليك اليوم."
    page.get_by_text("My own text").click()
    type_into(page, "Answer", answer)
    preview = page.locator('[class*="st-key-rtl-"]').filter(has_text="نقدر نغير الموعد")
    sync_api.expect(preview).to_have_count(1)
    _right_to_left(preview)
    page.get_by_role("button", name="Send answer").click()
    sync_api.expect(page.get_by_text("Answer sent", exact=False)).to_be_visible()
    settle(page)
    sync_api.expect(page.locator('[data-testid="stChatMessage"]').filter(has_text="بنتصل عليك اليوم")
                    ).to_have_count(1)  # the answer is in the thread, by the front desk
    sync_api.expect(page.get_by_text("nobody is waiting for an answer", exact=False)).to_be_visible()
    sync_api.expect(page.get_by_label("Answer", exact=True)).to_have_value("")  # sent: the box is empty again

    page.get_by_role("button", name="Mark done").click()
    sync_api.expect(page.get_by_text("Marked done.", exact=False)).to_be_visible()
    sync_api.expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    settle(page)
    sync_api.expect(page.get_by_label("Answer", exact=True)).to_have_value("")  # and stays empty: nothing to resend
    assert_no_errors(page, "a thread answered and done")
    shot(page, "reminders-inbox-thread-done")

    _open_thread(page, OUTSIDE_WINDOW)  # 30 hours ago: WhatsApp's window is closed
    sync_api.expect(page.locator('[data-testid="stAlertContentInfo"]').filter(
        has_text="Outside those 24 hours WhatsApp delivers only a template it approved")).to_be_visible()
    sync_api.expect(page.get_by_text("My own text")).to_have_count(0)
    sync_api.expect(page.get_by_text("Free text can be sent until", exact=False)).to_have_count(0)
    assert_no_errors(page, "a thread outside the 24 hours")
    shot(page, "reminders-inbox-outside-window")


# --- analyst ----------------------------------------------------------------------------------------


def test_analyst_reads_reminders_and_replies_but_has_no_front_desk_screens(page: sync_api.Page,
                                                                          demo: Demo) -> None:
    _signed_in(page, demo, ANALYST)
    sync_api.expect(page.get_by_role("heading", name="Analytics", level=1)).to_be_visible()
    titles = menu(page)
    assert "Analytics" in titles and not {"Inbox", "Reminders", "Appointments"} & set(titles), titles

    open_tab(page, "Reminders and replies")
    sync_api.expect(_metric(page, "Confirmed by reply")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    sync_api.expect(_metric(page, "Replies still waiting")).to_have_text(re.compile(r"^[1-9]\d*$"))
    sync_api.expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(5)
    settle(page)
    sync_api.expect(page.get_by_text("No reminders sent for appointments in this period", exact=False)
                    ).to_have_count(0)
    assert_no_errors(page, "reminders and replies")
    shot(page, "reminders-analytics")

    page.goto(f"{demo.url}/inbox")  # not in the menu, and its address says so
    sync_api.expect(page.locator('[data-testid="stAlertContentError"]')).to_contain_text(
        "Your role (Analyst) cannot open Inbox.")
