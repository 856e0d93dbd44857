"""The role matrix (docs/roles.md) is the truth: pages against the menu, service functions by calling them.

docs/roles.md, "The role matrix", has two tables. Pages are checked against ``MENU`` and
``ROLE_PERMISSIONS``; each service function is called as each role in clinic A (``CALLS`` says
how) and must either work or raise ``PermissionDenied``, as the table says. A page in the menu,
or a role-checked service function in ``app/services``, missing from docs/roles.md fails here.
A function whose answer depends on its input (e.g. the bulk wizard's audience) has one row per
case: "`name` (case)". A last column headed "note" is free text for the reader.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.errors import PermissionDenied
from app.providers.routing import SAUDI, RouteStep
from app.services import (
    analytics,
    api_keys,
    audit,
    clinic_settings,
    explorer,
    inbox,
    message_export,
    messaging,
    patients,
    single_send,
    staff,
    templates,
    whatsapp_templates,
)
from app.services.appointments import fhir, listing, records, upload
from app.services.bulk import jobs, wizard
from app.services.explorer import MessageFilter
from app.services.permissions import ROLE_PERMISSIONS, Actor
from app.services.reminders import dispatch as reminder_dispatch
from app.services.reminders import rules as reminder_rules
from app.services.reminders import schedule as reminder_schedule
from app.ui.navigation import MENU
from db.enums import AppointmentStatus, Channel, Language, MessageStatus, Role
from db.models import Appointment, AppointmentReminder
from db.session import tenant_session
from db.types import utcnow
from tests.factories import DEFAULT_PASSWORD, make_reply
from tests.security.conftest import CONTENT_SID, SETTINGS, World, this_week

ROOT = Path(__file__).resolve().parents[2]
MATRIX_DOC = ROOT / "docs" / "roles.md"
MATRIX = MATRIX_DOC.read_text(encoding="utf-8")
ROLES_BY_HEADER = {role.label.lower(): role for role in Role}


def readme_table(first_header: str) -> dict[str, dict[Role, bool]]:
    """The docs/roles.md table whose first column is ``first_header``: row name -> role -> allowed."""
    lines = MATRIX.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"^\|\s*{first_header}\s*\|", line)), None)
    assert start is not None, f"docs/roles.md has no table starting '| {first_header} |'"
    header = [cell.strip().lower() for cell in lines[start].strip().strip("|").split("|")]
    has_note = header[-1] == "note"
    roles = [ROLES_BY_HEADER[h] for h in header[1:len(header) - has_note]]
    assert set(roles) == set(Role), f"the '{first_header}' table needs one column per role"
    table: dict[str, dict[Role, bool]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        name, *cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == len(header) - 1, f"docs/roles.md row {name!r}: one cell per column (no '|' in notes)"
        cells = cells[:len(roles)]
        assert {c for c in cells} <= {"allowed", "refused"}, f"docs/roles.md row {name!r}: write allowed or refused"
        assert name not in table, f"docs/roles.md lists {name!r} twice"
        table[name.replace("`", "")] = {role: cell == "allowed" for role, cell in zip(roles, cells, strict=True)}
    return table


PAGES = readme_table("page")
SERVICES = readme_table("service function")


def test_every_menu_page_is_in_the_readme_and_nothing_else() -> None:
    assert {e.title for e in MENU} - set(PAGES) == set(), "pages missing from the role matrix in docs/roles.md"
    assert set(PAGES) - {e.title for e in MENU} == set(), "docs/roles.md lists pages that are not in the menu"


@pytest.mark.parametrize("title", sorted(PAGES))
def test_pages_match_the_menu_permissions(title: str) -> None:
    entry = next(e for e in MENU if e.title == title)
    actual = {role: entry.permission in ROLE_PERMISSIONS[role] for role in Role}
    assert actual == PAGES[title], f"{title}: code says {actual}"


# How to call each documented service function as ``actor`` of clinic A (one line each).
Call = Callable[[World, Actor], Any]
CALLS: dict[str, Call] = {
    "templates.reading.list_templates": lambda w, a: w.call(templates.list_templates, a),
    "templates.reading.get_template": lambda w, a: w.call(templates.get_template, a, w.a.template_id),
    "templates.reading.get_version": lambda w, a: w.call(templates.get_version, a, w.a.template_id, 1),
    "templates.reading.diff_versions": lambda w, a: w.call(templates.diff_versions, a, w.a.template_id, 1, 1),
    "templates.reading.template_usage": lambda w, a: w.call(templates.template_usage, a, w.a.template_id),
    "templates.editing.create_template": lambda w, a: w.call(
        templates.create_template, a, code=w.unique("new"), name="New", channel="SMS", body_en="Hello"),
    "templates.editing.update_template": lambda w, a: w.call(templates.update_template, a, w.a.template_id, note="x"),
    "templates.editing.duplicate_template": lambda w, a: w.call(
        templates.duplicate_template, a, w.a.template_id, new_code=w.unique("copy"), new_name="Copy"),
    "templates.editing.set_active": lambda w, a: w.call(templates.set_active, a, w.a.template_id, True),
    "templates.editing.restore_version": lambda w, a: w.call(templates.restore_version, a, w.a.template_id, 1),
    "templates.editing.delete_template": lambda w, a: w.call(templates.delete_template, a, w.new_template()),
    "templates.sending.test_send": lambda w, a: w.call(templates.test_send, a, w.a.template_id,
                                                       recipient="+966501112233"),
    "messaging.send": lambda w, a: w.call(messaging.send, a, "SMS", patient_id=w.a.patient_id, text="Hello"),
    "messaging.schedule": lambda w, a: w.call(messaging.schedule, a, "SMS", utcnow() + dt.timedelta(days=1),
                                              patient_id=w.a.patient_id, text="Hi"),
    "messaging.retry": lambda w, a: w.call(messaging.retry, a, [w.failed_message()]),
    "messaging.cancel (messages)": lambda w, a: w.call(messaging.cancel, a, message_ids=[w.queued_message()]),
    "messaging.cancel (bulk job)": lambda w, a: w.call(messaging.cancel, a, bulk_job_id=w.bulk_job()),
    "MessagingService.send_bulk_messages": lambda w, a: w.messaging.send_bulk_messages(
        ["+966501234567"], "Closed on Friday", "SMS", w.a.tenant_id, actor=a),
    "messaging.pause_sending": lambda w, a: w.call(messaging.pause_sending, a, reason="x"),
    "messaging.resume_sending": lambda w, a: w.call(messaging.resume_sending, a),
    "messaging.is_paused": lambda w, a: w.call(messaging.is_paused, a),
    "single_send.options": lambda w, a: w.call(single_send.options, a, w.a.patient_id),
    "single_send.preview": lambda w, a: w.call(single_send.preview, a, _one_message(w)),
    "single_send.send": lambda w, a: w.call(single_send.send, a, _one_message(w), idempotency_key=w.unique("one")),
    "staff.list_staff": lambda w, a: w.call(staff.list_staff, a),
    "staff.create_user": lambda w, a: w.call(staff.create_user, a, username=w.unique("nora"),
                                             password=DEFAULT_PASSWORD, role=Role.ANALYST),
    "staff.change_role": lambda w, a: w.call(staff.change_role, a, w.a.analyst.user_id, Role.ANALYST),
    "staff.set_active": lambda w, a: w.call(staff.set_active, a, w.a.analyst.user_id, True),
    "staff.reset_password": lambda w, a: w.call(staff.reset_password, a, w.a.analyst.user_id, DEFAULT_PASSWORD),
    "staff.unlock": lambda w, a: w.call(staff.unlock, a, w.a.analyst.user_id),
    "staff.set_full_contact_access": lambda w, a: w.call(staff.set_full_contact_access, a, w.a.analyst.user_id,
                                                         True),
    "audit.search": lambda w, a: w.call(audit.search, a),
    "audit.choices": lambda w, a: w.call(audit.choices, a),
    "audit.export_csv": lambda w, a: w.call(audit.export_csv, a),
    # Dashboard and Analytics
    "analytics.summary": lambda w, a: w.call(analytics.summary, a, this_week()),
    "analytics.recent_messages": lambda w, a: w.call(analytics.recent_messages, a),
    "analytics.failure_reasons": lambda w, a: w.call(analytics.failure_reasons, a, this_week()),
    "analytics.bulk_jobs_in_progress": lambda w, a: w.call(analytics.bulk_jobs_in_progress, a),
    "analytics.template_choices": lambda w, a: w.call(analytics.template_choices, a),
    "analytics.report": lambda w, a: w.call(analytics.report, a, this_week(), now=utcnow()),
    "analytics.reminder_results": lambda w, a: w.call(analytics.reminder_results, a, this_week()),
    "analytics.record_export": lambda w, a: w.call(analytics.record_export, a, "delivery_rate", rows=1,
                                                   period=this_week()),
    # Messages (explorer) and exports
    "explorer.list_messages": lambda w, a: w.call(explorer.list_messages, a, MessageFilter()),
    "explorer.count_messages": lambda w, a: w.call(explorer.count_messages, a, MessageFilter()),
    "explorer.message_detail": lambda w, a: w.call(explorer.message_detail, a, w.queued_message()),
    "explorer.filter_options": lambda w, a: w.call(explorer.filter_options, a),
    "explorer.bulk_job_preparation": lambda w, a: w.call(explorer.bulk_job_preparation, a, w.bulk_job()),
    "explorer.retryable_ids": lambda w, a: w.call(explorer.retryable_ids, a, MessageFilter()),
    "explorer.retry_filtered": lambda w, a: _retry_filtered(w, a),
    "message_export.export_csv": lambda w, a: w.export_now(a),
    "message_export.request_export": lambda w, a: w.requested_export(a),
    "message_export.list_exports": lambda w, a: w.call(message_export.list_exports, a),
    "message_export.export_file": lambda w, a: w.call(message_export.export_file, a, w.finished_export(w.a.analyst),
                                              directory=w.export_dir),
    # Patients
    "patients.search_patients": lambda w, a: w.call(patients.search_patients, a, "Sara"),
    "patients.patient_detail": lambda w, a: w.call(patients.patient_detail, a, w.a.patient_id),
    "patients.change_preferences": lambda w, a: _flip_sms_preference(w, a),
    "patients.change_contacts": lambda w, a: _change_phone(w, a),
    # Bulk send: the wizard (front desk: a custom list of at most 20) and the jobs
    "bulk.wizard.authorize_use": lambda w, a: w.call(wizard.authorize_use, a),
    "bulk.wizard.options": lambda w, a: w.call(wizard.options, a, Channel.SMS),
    "bulk.wizard.start_expansion": lambda w, a: w.call(wizard.start_expansion, a, w.wizard_job(w.a.admin)),
    "bulk.wizard.authorize_audience (custom list of 20)": lambda w, a: w.call(
        wizard.authorize_audience, a, w.list_draft(20).audience),
    "bulk.wizard.authorize_audience (custom list of 21)": lambda w, a: w.call(
        wizard.authorize_audience, a, w.list_draft(21).audience),
    "bulk.wizard.authorize_audience (all patients)": lambda w, a: w.call(
        wizard.authorize_audience, a, w.everyone_draft().audience),
    "bulk.wizard.dry_run (custom list of 20)": lambda w, a: w.call(wizard.dry_run, a, w.list_draft(20)),
    "bulk.wizard.dry_run (all patients)": lambda w, a: w.call(wizard.dry_run, a, w.everyone_draft()),
    "bulk.wizard.skipped_csv": lambda w, a: w.call(wizard.skipped_csv, a, w.call(
        wizard.dry_run, w.a.admin, w.list_draft())),
    "bulk.wizard.confirm (custom list of 20)": lambda w, a: w.call(wizard.confirm, a, w.list_draft(20),
                                                                   typed_count=20),
    "bulk.wizard.confirm (custom list of 21)": lambda w, a: w.call(wizard.confirm, a, w.list_draft(21),
                                                                   typed_count=21),
    "bulk.wizard.confirm (all patients)": lambda w, a: w.call(wizard.confirm, a, w.everyone_draft(),
                                                              typed_count=1),
    "bulk.jobs.list_jobs": lambda w, a: w.call(jobs.list_jobs, a),
    "bulk.jobs.progress": lambda w, a: w.call(jobs.progress, a, w.wizard_job(w.a.front_desk)),
    "bulk.jobs.pause": lambda w, a: w.call(jobs.pause, a, w.bulk_job()),
    "bulk.jobs.resume": lambda w, a: w.call(jobs.resume, a, _paused_job(w)),
    "bulk.jobs.cancel": lambda w, a: w.call(jobs.cancel, a, w.bulk_job()),
    "bulk.jobs.take_endings": lambda w, a: w.call(jobs.take_endings, a),
    # WhatsApp templates
    "whatsapp_templates.get_whatsapp_link": lambda w, a: w.call(whatsapp_templates.get_whatsapp_link, a,
                                                                w.a.template_id),
    "whatsapp_templates.refresh_approval": lambda w, a: w.refresh_approval(a, w.whatsapp_template(linked=True)),
    "whatsapp_templates.set_whatsapp_link": lambda w, a: w.call(
        whatsapp_templates.set_whatsapp_link, a, w.whatsapp_template(), content_sid=CONTENT_SID,
        variable_map={"1": "patient_name"}, fallback_channel=None),
    # Settings
    "clinic_settings.get_clinic_settings": lambda w, a: w.call(clinic_settings.get_clinic_settings, a,
                                                               settings=SETTINGS),
    "clinic_settings.set_route": lambda w, a: w.call(clinic_settings.set_route, a, Channel.SMS, SAUDI,
                                                     [RouteStep("unifonic", "AgdarClinic")]),
    "clinic_settings.set_credentials": lambda w, a: w.call(clinic_settings.set_credentials, a, "unifonic",
                                                           {"app_sid": "app-sid-1"}, settings=SETTINGS),
    "clinic_settings.clear_credentials": lambda w, a: w.call(clinic_settings.clear_credentials, a, "unifonic"),
    "clinic_settings.rotate_dlr_token": lambda w, a: w.call(clinic_settings.rotate_dlr_token, a, settings=SETTINGS),
    "clinic_settings.set_locale": lambda w, a: w.call(clinic_settings.set_locale, a, timezone="Asia/Dubai",
                                                      default_region="AE"),
    "clinic_settings.set_profile": lambda w, a: w.call(clinic_settings.set_profile, a, clinic_settings.ClinicProfile(
        w.unique("Clinic"), "عيادة", Language.AR, "", dt.time(9, 0), dt.time(19, 0))),
    # the inbox (issue 20)
    "inbox.reading.threads": lambda w, a: w.call(inbox.threads, a),
    "inbox.reading.unread_total": lambda w, a: w.call(inbox.unread_total, a),
    "inbox.reading.thread": lambda w, a: w.call(inbox.thread, a, _thread(w)),
    "inbox.working.assignable_staff": lambda w, a: w.call(inbox.assignable_staff, a),
    "inbox.working.assign": lambda w, a: w.call(inbox.assign, a, _thread(w), w.a.front_desk.user_id),
    "inbox.working.mark_done": lambda w, a: w.call(inbox.mark_done, a, _thread(w)),
    "inbox.working.reopen": lambda w, a: w.call(inbox.reopen, a, _thread(w)),
    "inbox.replying.reply_options": lambda w, a: w.call(inbox.reply_options, a, _thread(w)),
    "inbox.replying.reply_preview": lambda w, a: w.call(inbox.reply_preview, a, _thread(w), text="See you then."),
    "inbox.replying.reply": lambda w, a: w.call(inbox.reply, a, _thread(w), text="See you then.",
                                                idempotency_key=w.unique("answer")),
    # appointments (issue 20)
    "appointments.listing.appointments": lambda w, a: w.call(listing.appointments, a, listing.AppointmentFilter(
        utcnow().date(), utcnow().date() + dt.timedelta(days=7))),
    "appointments.records.preview": lambda w, a: w.call(records.preview, a, [_booking("A-1")], source="upload"),
    "appointments.records.apply": lambda w, a: w.call(records.apply, a, [_booking("A-1")], source="api"),
    "appointments.records.set_status (reply or staff)": lambda w, a: w.call(
        records.set_status, a, _appointment(w, "R-1"), AppointmentStatus.CONFIRMED, source="reply"),
    "appointments.records.set_status (api)": lambda w, a: w.call(
        records.set_status, a, _appointment(w, "P-1"), AppointmentStatus.CANCELLED, source="api"),
    "appointments.upload.review": lambda w, a: w.call(upload.review, a, UPLOAD, "list.csv"),
    "appointments.upload.commit": lambda w, a: w.call(upload.commit, a, w.call(upload.review, w.a.admin, UPLOAD,
                                                                               "list.csv")),
    "appointments.fhir.upsert": lambda w, a: w.call(fhir.upsert, a, _fhir_booking(w.unique("F"))),
    "appointments.fhir.read": lambda w, a: w.call(fhir.read, a, "A-1"),
    "appointments.fhir.changed_since": lambda w, a: w.call(fhir.changed_since, a, None),
    # the appointments API's keys (issue 20)
    "api_keys.list_keys": lambda w, a: w.call(api_keys.list_keys, a),
    "api_keys.create": lambda w, a: w.call(api_keys.create, a, w.unique("HIS")),
    "api_keys.revoke": lambda w, a: w.call(api_keys.revoke, a, w.call(api_keys.create, w.a.admin,
                                                                      w.unique("HIS")).view.id),
    # reminders (issue 20)
    "reminders.rules.list_rules": lambda w, a: w.call(reminder_rules.list_rules, a),
    "reminders.rules.rule_options": lambda w, a: w.call(reminder_rules.rule_options, a),
    "reminders.rules.create_rule": lambda w, a: w.call(reminder_rules.create_rule, a, _rule_input(w)),
    "reminders.rules.update_rule": lambda w, a: w.call(reminder_rules.update_rule, a, _reminder_rule(w),
                                                       _rule_input(w)),
    "reminders.rules.set_rule_active": lambda w, a: w.call(reminder_rules.set_rule_active, a, _reminder_rule(w),
                                                           False),
    "reminders.rules.get_calendar": lambda w, a: w.call(reminder_rules.get_calendar, a),
    "reminders.rules.set_calendar": lambda w, a: w.call(reminder_rules.set_calendar, a,
                                                        reminder_rules.CalendarSettings(weekend_days=(4,))),
    "reminders.dispatch.preview": lambda w, a: w.call(reminder_dispatch.preview, a, _reminder(w)),
    "reminders.schedule.upcoming": lambda w, a: w.call(reminder_schedule.upcoming, a),
    "reminders.schedule.reminders_of": lambda w, a: w.call(reminder_schedule.reminders_of, a,
                                                           [_appointment(w, "R-1")]),
}
UPLOAD = b"source_id,mrn,date,time,patient_name\nU-1,MRN-1,2031-01-05,09:30,Huda\n"


def _booking(source_id: str) -> records.AppointmentInput:
    return records.AppointmentInput(source_id, "MRN-1", utcnow() + dt.timedelta(days=2),
                                    patient=records.PatientDetails(name_en="Huda"))


def _fhir_booking(source_id: str) -> dict[str, Any]:
    """A FHIR Appointment for clinic A's patient MRN-1, as the clinic's system sends it."""
    start = (utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    return {"resourceType": "Appointment", "identifier": [{"value": source_id}], "status": "booked",
            "start": start.isoformat(), "minutesDuration": 20,
            "contained": [{"resourceType": "Patient", "id": "p", "identifier": [{"value": "MRN-1"}],
                           "name": [{"text": "Huda"}]}],
            "participant": [{"actor": {"reference": "#p"}, "status": "needs-action"}]}


def _appointment(world: World, source_id: str) -> Any:
    """Clinic A's appointment ``source_id`` (booked through the API the first time)."""
    world.call(records.apply, world.a.admin, [_booking(source_id)], source="api")
    with tenant_session(world.engine, world.a.tenant_id) as session:
        return session.scalars(select(Appointment.id).where(Appointment.source_id == source_id)).one()


def _rule_input(world: World) -> reminder_rules.RuleInput:
    return reminder_rules.RuleInput(name=world.unique("SMS 3 h"), channel=Channel.SMS, template_id=world.a.template_id,
                                    offset_minutes=180)


def _reminder_rule(world: World) -> Any:
    return world.call(reminder_rules.create_rule, world.a.admin, _rule_input(world)).id


def _reminder(world: World) -> Any:
    """A reminder of clinic A: a new rule's, of a new appointment."""
    rule_id = _reminder_rule(world)
    appointment_id = _appointment(world, world.unique("R"))
    with tenant_session(world.engine, world.a.tenant_id) as session:
        return session.scalars(select(AppointmentReminder.id).where(
            AppointmentReminder.appointment_id == appointment_id, AppointmentReminder.rule_id == rule_id)).one()


def _thread(world: World) -> Any:
    """A patient's WhatsApp reply in clinic A's inbox (the same thread each time)."""
    return make_reply(world.engine, world.a.tenant_id, address="+966501234567", body="Is 5 pm possible?")


def _retry_filtered(world: World, actor: Actor) -> Any:
    """Retry every failure of a filter holding one new failure (the count is what the page showed)."""
    world.failed_message()
    failed = MessageFilter(statuses=(MessageStatus.FAILED,))
    expected = len(world.call(explorer.retryable_ids, world.a.admin, failed))
    return world.call(explorer.retry_filtered, actor, failed, expected=expected)


def _flip_sms_preference(world: World, actor: Actor) -> Any:
    """A real change each time (an unchanged form is refused as "Nothing was changed")."""
    now = world.call(patients.patient_detail, world.a.admin, world.a.patient_id).preferences
    update = patients.PreferenceUpdate(not now.sms_opt_in, now.whatsapp_opt_in, now.email_opt_in, now.language,
                                       now.quiet_hours_start, now.quiet_hours_end)
    return world.call(patients.change_preferences, actor, world.a.patient_id, update, reason="patient asked")


def _change_phone(world: World, actor: Actor) -> Any:
    """A real change each time, from what an admin sees now (so the form is never stale)."""
    seen = world.call(patients.patient_detail, world.a.admin, world.a.patient_id).patient
    phone = "+966509876543" if seen.phone != "+966509876543" else "+966501234567"
    return world.call(patients.change_contacts, actor, world.a.patient_id,
                      patients.ContactUpdate(phone, seen.email or "", seen.language), version=seen.version)


def _one_message(world: World) -> single_send.OneMessage:
    """An e-mail to clinic A's patient (the SMS opt-in is the one another row flips)."""
    return single_send.OneMessage(patient_id=world.a.patient_id, channel=Channel.EMAIL, text="See you soon.")


def _paused_job(world: World) -> Any:
    job_id = world.bulk_job()
    world.call(jobs.pause, world.a.admin, job_id)
    return job_id


def test_every_documented_service_function_can_be_called_here() -> None:
    assert set(SERVICES) - set(CALLS) == set(), "add a line to CALLS for these docs/roles.md rows"
    assert set(CALLS) - set(SERVICES) == set(), "these calls are not in the role matrix (docs/roles.md)"


def _role_checked_functions() -> set[str]:
    """``module.function`` / ``Class.method`` in app/services whose body checks the role: calls
    ``authorize`` or raises ``PermissionDenied``, itself or through a function of the same module
    or class that does (so ``confirm`` -> ``authorize_audience`` -> ``authorize`` counts)."""
    found: set[str] = set()
    services = ROOT / "app" / "services"
    for path in services.rglob("*.py"):
        if path.stem == "permissions":  # the check itself
            continue
        parts = path.relative_to(services).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)  # "messaging", "bulk.wizard"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [(module, tree.body)] + [(n.name, n.body) for n in tree.body if isinstance(n, ast.ClassDef)]
        for owner, body in scopes:
            calls = {fn.name: {c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
                               for c in ast.walk(fn) if isinstance(c, ast.Call)}
                     for fn in body if isinstance(fn, ast.FunctionDef)}
            checked = {name for name, called in calls.items() if called & {"authorize", "PermissionDenied"}}
            while more := {name for name, called in calls.items() if called & checked} - checked:
                checked |= more
            found |= {f"{owner}.{name}" for name in checked if not name.startswith("_")}
    return found


def test_every_role_checked_service_function_is_in_the_readme() -> None:
    documented = {name.split(" (")[0] for name in SERVICES}
    assert _role_checked_functions() - documented == set(), "add these to the role matrix in docs/roles.md"


def test_service_functions_allow_and_refuse_as_documented(world: World) -> None:
    wrong: list[str] = []
    for name, expected in SERVICES.items():
        for role, allowed in expected.items():
            try:
                CALLS[name](world, world.a.by_role(role))
                outcome = True
            except PermissionDenied:
                outcome = False
            if outcome != allowed:
                wrong.append(f"{name} as {role.value}: docs/roles.md says {'allowed' if allowed else 'refused'}")
    assert wrong == []
