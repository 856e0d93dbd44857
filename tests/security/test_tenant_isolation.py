"""A user of clinic B never sees clinic A's objects through any service read (NotFound or nothing).

``READS`` is the table: how to ask for clinic A's objects as clinic B's admin (who holds every
permission, so only the clinic boundary can refuse), and what must hold of the answer (a row
without a check must raise ``NotFoundError``). Writes that name clinic A's objects are covered
too: they must find nothing to change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from app.errors import NotFoundError
from app.providers.routing import SAUDI, RouteStep
from app.services import (
    analytics,
    audit,
    clinic_settings,
    explorer,
    message_export,
    messaging,
    patients,
    staff,
    templates,
    tenants,
    whatsapp_templates,
)
from app.services.appointments import listing, records, upload
from app.services.bulk import jobs, wizard
from app.services.bulk.wizard import Draft
from app.services.explorer import MessageFilter
from db.enums import AppointmentStatus, Channel, Language, Role
from db.types import utcnow
from tests.factories import make_patient
from tests.security.conftest import CONTENT_SID, SETTINGS, World, this_week


@dataclass(frozen=True)
class Read:
    name: str
    ask: Callable[[World], Any]  # as clinic B's admin, about clinic A's objects
    # Without a check the call must end in NotFound: an answer about A's object is a leak.
    sees_nothing_of_a: Callable[[World, Any], bool] = lambda w, result: False


def _b(world: World, fn: Callable, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
    return world.call(fn, world.b.admin, *args, **kwargs)


def _a_ids(world: World) -> set[str]:
    return {str(i) for i in (world.a.tenant_id, world.a.admin.user_id, world.a.front_desk.user_id,
                             world.a.analyst.user_id, world.a.patient_id, world.a.template_id)}


def _then(setup: Callable[[World], Any], ask: Callable[[World], Any]) -> Callable[[World], Any]:
    """Make something in clinic A first (``setup``), then ask as clinic B."""
    return lambda w: (setup(w), ask(w))[1]


def _a_has_messages(world: World) -> None:
    world.queued_message()
    world.failed_message()


def _a_has_settings(world: World) -> None:
    admin = world.a.admin
    world.call(clinic_settings.set_route, admin, Channel.SMS, SAUDI, [RouteStep("unifonic", "ClinicA")])
    world.call(clinic_settings.set_credentials, admin, "unifonic", {"app_sid": "clinic-a-sid"}, settings=SETTINGS)
    world.call(clinic_settings.set_locale, admin, timezone="Asia/Dubai", default_region="AE")
    world.call(clinic_settings.set_profile, admin, clinic_settings.ClinicProfile(
        "Clinic A", "عيادة أ", Language.AR, "Clinic A", dt.time(10, 0), dt.time(12, 0)))


def _b_sees_default_settings(world: World, view: clinic_settings.ClinicSettings) -> bool:
    return (all(route.steps == () for route in view.routes) and not any(c.is_set for c in view.credentials)
            and view.timezone != "Asia/Dubai" and view.profile.name_ar != "عيادة أ")


def _a_credentials_kept(world: World, cleared: bool) -> bool:
    view = world.call(clinic_settings.get_clinic_settings, world.a.admin, settings=SETTINGS)
    return cleared is False and any(c.is_set for c in view.credentials if c.provider == "unifonic")


def _a_template_draft(world: World) -> Draft:
    return Draft(idempotency_key=wizard.new_draft_key(), audience={"kind": "all"}, channel=Channel.SMS,
                 template_id=world.a.template_id)


def _a_has_two_patients(world: World) -> None:
    make_patient(world.engine, world.a.tenant_id, name_en="Huda", phone="+966501111111")


def _booking() -> records.AppointmentInput:
    return records.AppointmentInput("A-1", "MRN-1", dt.datetime(2031, 1, 5, 6, 30, tzinfo=dt.UTC),
                                    patient=records.PatientDetails(name_en="Huda"))


def _a_appointment(world: World) -> Any:
    """Clinic A's appointment A-1 (its patient MRN-1 made with it), booked through the API."""
    return world.call(records.apply, world.a.admin, [_booking()], source="api").appointment_ids[0]


READS: list[Read] = [
    Read("staff.list_staff", lambda w: _b(w, staff.list_staff),
         lambda w, r: {m.id for m in r} == {w.b.admin.user_id, w.b.front_desk.user_id, w.b.analyst.user_id}),
    Read("templates.reading.list_templates", lambda w: _b(w, templates.list_templates),
         lambda w, r: w.a.template_id not in {t.id for t in r}),
    Read("templates.reading.get_template", lambda w: _b(w, templates.get_template, w.a.template_id)),
    Read("templates.reading.get_version", lambda w: _b(w, templates.get_version, w.a.template_id, 1)),
    Read("templates.reading.diff_versions", lambda w: _b(w, templates.diff_versions, w.a.template_id, 1, 1)),
    Read("templates.reading.template_usage", lambda w: _b(w, templates.template_usage, w.a.template_id)),
    Read("templates.sending.test_send", lambda w: _b(w, templates.test_send, w.a.template_id,
                                                     recipient="+966501112233")),
    Read("tenants.get_clinic", lambda w: w.call(lambda s, _a: tenants.get_clinic(s), w.b.admin),
         lambda w, r: r.slug == "clinic-b"),
    Read("audit.search", lambda w: _b(w, audit.search, limit=500),
         lambda w, r: not _a_ids(w) & {str(v) for e in r.entries for v in (e.object_id, e.actor_id)}
         and all(e.actor_name.startswith(("b.", "system", "command")) for e in r.entries)),
    Read("audit.choices", lambda w: _b(w, audit.choices),
         lambda w, r: not {w.a.admin.user_id, w.a.front_desk.user_id} & set(r.users)),
    Read("audit.export_csv", lambda w: _b(w, audit.export_csv),
         lambda w, r: not any(i in r.decode("utf-8") for i in _a_ids(w)) and b"a.admin" not in r),
    Read("messaging.send (A's patient)", lambda w: w.call(messaging.send, w.b.admin,
                                                          "SMS", patient_id=w.a.patient_id, text="Hello")),
    Read("messaging.send (A's template)", lambda w: w.call(
        messaging.send, w.b.admin, "SMS", recipient="+966501112233", template_code="reminder-a")),
    Read("messaging.retry (A's message)", lambda w: w.call(messaging.retry, w.b.admin, [w.failed_message()])),
    Read("messaging.cancel (A's message)", lambda w: w.call(messaging.cancel, w.b.admin,
                                                            message_ids=[w.queued_message()]), lambda w, r: r == 0),
    Read("messaging.cancel (A's bulk job)", lambda w: w.call(messaging.cancel, w.b.admin, bulk_job_id=w.bulk_job())),
    Read("staff.change_role (A's user)", lambda w: _b(w, staff.change_role, w.a.analyst.user_id, Role.ADMIN)),
    Read("staff.reset_password (A's user)", lambda w: _b(w, staff.reset_password, w.a.analyst.user_id,
                                                         "a-new-long-password")),
    Read("templates.editing.update_template (A's template)", lambda w: _b(w, templates.update_template,
                                                                          w.a.template_id, body_en="Hijacked")),
    Read("templates.editing.delete_template (A's template)", lambda w: _b(w, templates.delete_template,
                                                                          w.a.template_id)),
    # Messages (explorer) and exports
    Read("explorer.list_messages", _then(_a_has_messages, lambda w: _b(w, explorer.list_messages, MessageFilter())),
         lambda w, r: r.rows == []),
    Read("explorer.count_messages", _then(_a_has_messages, lambda w: _b(w, explorer.count_messages,
                                                                        MessageFilter())),
         lambda w, r: (r.value, r.exact) == (0, True)),
    Read("explorer.message_detail (A's message)", lambda w: _b(w, explorer.message_detail, w.queued_message())),
    Read("explorer.filter_options", _then(lambda w: w.bulk_job(), lambda w: _b(w, explorer.filter_options)),
         lambda w, r: w.a.template_id not in r.templates and r.bulk_jobs == {}),
    Read("explorer.retryable_ids", _then(_a_has_messages, lambda w: _b(w, explorer.retryable_ids, MessageFilter())),
         lambda w, r: r == []),
    Read("message_export.export_csv", _then(_a_has_messages, lambda w: w.export_now(w.b.admin)),
         lambda w, r: r.decode("utf-8-sig").strip().count("\n") == 0),  # the header only
    Read("message_export.list_exports", _then(lambda w: w.finished_export(w.a.analyst),
                                              lambda w: _b(w, message_export.list_exports)), lambda w, r: r == []),
    Read("message_export.export_file (A's export)", lambda w: _b(
        w, message_export.export_file, w.finished_export(w.a.admin), directory=w.export_dir)),
    # Patients
    Read("patients.search_patients (A's phone)", lambda w: _b(w, patients.search_patients, "+966501234567"),
         lambda w, r: r == []),
    Read("patients.patient_detail (A's patient)", lambda w: _b(w, patients.patient_detail, w.a.patient_id)),
    Read("patients.change_preferences (A's patient)", lambda w: _b(
        w, patients.change_preferences, w.a.patient_id, patients.PreferenceUpdate(False, False, False, None, None,
                                                                                  None), reason="hijack")),
    Read("patients.change_contacts (A's patient)", lambda w: _b(
        w, patients.change_contacts, w.a.patient_id, patients.ContactUpdate("+966509876543", "", Language.EN),
        version="")),
    # Bulk send
    Read("bulk.wizard.options", lambda w: _b(w, wizard.options, Channel.SMS),
         lambda w, r: w.a.template_id not in {i for i, _ in r.templates}),
    Read("bulk.wizard.dry_run (all patients)", _then(_a_has_two_patients, lambda w: _b(
        w, wizard.dry_run, w.everyone_draft())), lambda w, r: r.audience_size == 1),
    Read("bulk.wizard.confirm (A's template)", lambda w: _b(w, wizard.confirm, _a_template_draft(w))),
    Read("bulk.jobs.list_jobs", _then(lambda w: w.wizard_job(w.a.front_desk), lambda w: _b(w, jobs.list_jobs)),
         lambda w, r: r == []),
    Read("bulk.jobs.progress (A's job)", lambda w: _b(w, jobs.progress, w.bulk_job())),
    Read("bulk.jobs.pause (A's job)", lambda w: _b(w, jobs.pause, w.bulk_job())),
    Read("bulk.jobs.cancel (A's job)", lambda w: _b(w, jobs.cancel, w.bulk_job())),
    # Dashboard and Analytics
    Read("analytics.summary", _then(_a_has_messages, lambda w: _b(w, analytics.summary, this_week())),
         lambda w, r: r.totals.messages == 0 and r.channels.empty),
    Read("analytics.recent_messages", _then(_a_has_messages, lambda w: _b(w, analytics.recent_messages)),
         lambda w, r: r.empty),
    Read("analytics.failure_reasons", _then(_a_has_messages, lambda w: _b(w, analytics.failure_reasons,
                                                                          this_week())),
         lambda w, r: r.empty),
    Read("analytics.bulk_jobs_in_progress", _then(lambda w: w.bulk_job(), lambda w: _b(
        w, analytics.bulk_jobs_in_progress)), lambda w, r: r.empty),
    Read("analytics.report", _then(lambda w: (_a_has_messages(w), w.bulk_job()), lambda w: _b(
        w, analytics.report, this_week(), now=utcnow())),
        lambda w, r: r.channels.empty and r.bulk_jobs.empty and r.templates.empty),
    Read("analytics.template_choices", lambda w: _b(w, analytics.template_choices),
         lambda w, r: w.a.template_id not in r),
    # Settings
    Read("clinic_settings.get_clinic_settings", _then(_a_has_settings, lambda w: _b(
        w, clinic_settings.get_clinic_settings, settings=SETTINGS)), _b_sees_default_settings),
    Read("clinic_settings.clear_credentials (A's provider)", _then(_a_has_settings, lambda w: _b(
        w, clinic_settings.clear_credentials, "unifonic")), _a_credentials_kept),
    # WhatsApp templates
    Read("whatsapp_templates.get_whatsapp_link (A's template)", lambda w: _b(
        w, whatsapp_templates.get_whatsapp_link, w.whatsapp_template(linked=True))),
    Read("whatsapp_templates.set_whatsapp_link (A's template)", lambda w: _b(
        w, whatsapp_templates.set_whatsapp_link, w.whatsapp_template(), content_sid=CONTENT_SID,
        variable_map={"1": "patient_name"}, fallback_channel=None)),
    Read("whatsapp_templates.refresh_approval (A's template)", lambda w: w.refresh_approval(
        w.b.admin, w.whatsapp_template(linked=True))),
    # Appointments (issue 20): the same id and MRN in both clinics
    Read("appointments.listing.appointments", _then(_a_appointment, lambda w: _b(
        w, listing.appointments, listing.AppointmentFilter(dt.date(2031, 1, 1), dt.date(2031, 1, 10)))),
        lambda w, r: r.rows == []),
    Read("appointments.records.set_status (A's appointment)", lambda w: _b(
        w, records.set_status, _a_appointment(w), AppointmentStatus.CANCELLED, source="staff")),
    Read("appointments.records.apply (A's id and MRN)", _then(_a_appointment, lambda w: _b(
        w, records.apply, [_booking()], source="api")),
        lambda w, r: r.created == 1 and w.call(records.preview, w.a.admin, [_booking()], source="api").items[0]
        .kind == records.Kind.UNCHANGED),
    Read("appointments.upload.review (A's id and MRN)", _then(_a_appointment, lambda w: _b(
        w, upload.review, b"source_id,mrn,start,patient_name\nA-1,MRN-1,2031-01-05T09:30+03:00,Huda\n", "a.csv")),
        lambda w, r: (r.to_create, r.unchanged, r.new_patients) == (1, 0, 1)),
]


@pytest.mark.parametrize("read", READS, ids=lambda r: r.name)
def test_clinic_b_never_sees_or_touches_clinic_a(world: World, read: Read) -> None:
    w = world
    _give_a_template_only_a_has(w)
    try:
        result = read.ask(w)
    except NotFoundError:
        result = None
    else:
        assert read.sees_nothing_of_a(w, result), f"{read.name} showed clinic B something of clinic A: {result!r}"
    # Clinic A's own view is untouched.
    detail = w.call(templates.get_template, w.a.admin, w.a.template_id)
    assert (detail.current_version, detail.is_active) == (1, True) and "Hijacked" not in detail.body_en
    assert {m.username: m.role for m in w.call(staff.list_staff, w.a.admin)} == {
        "a.admin": Role.ADMIN, "a.desk": Role.FRONT_DESK, "a.analyst": Role.ANALYST}


def _give_a_template_only_a_has(world: World) -> None:
    world.call(templates.create_template, world.a.admin, code="reminder-a", name="Only A", channel="SMS",
               body_en="Only clinic A")
