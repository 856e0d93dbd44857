"""Every state-changing action in the app leaves an audit row naming who did it.

``ACTIONS`` is the table: one line per action (the audit action it must record, and how to do
it). ``test_the_table_covers_every_audited_action_in_the_code`` reads every
``audit.record(session, actor, "<action>", ...)`` call in ``app/`` and fails when an action is
missing here, so a new service action is one more line in this table.
"""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import AuthenticationError
from app.providers.routing import SAUDI, RouteStep
from app.services import (
    analytics,
    api_keys,
    audit,
    auth,
    clinic_settings,
    inbox,
    message_export,
    messaging,
    patients,
    staff,
    templates,
    tenants,
    whatsapp_templates,
)
from app.services.appointments import records
from app.services.auth import LoginPolicy
from app.services.bulk import jobs, wizard
from app.services.reminders import rules as reminder_rules
from db.enums import AppointmentStatus, Channel, Language, Role
from db.models import AuditEvent
from db.session import system_session
from db.types import utcnow
from tests.factories import DEFAULT_PASSWORD, make_reply
from tests.security.conftest import CONTENT_SID, SETTINGS, World, this_week

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Action:
    name: str  # what a person does, in words
    audited_as: str  # the AuditEvent.action it must leave
    run: Callable[[World], None]
    by: Role | None = Role.ADMIN  # who it is recorded against (None: no signed-in user)


def _in(world: World, fn: Callable, *args, **kwargs) -> None:  # type: ignore[type-arg]
    world.call(fn, world.a.admin, *args, **kwargs)


def _login(world: World, password: str = DEFAULT_PASSWORD) -> None:
    auth.authenticate(world.engine, world.a.admin.username, password, policy=LoginPolicy())


def _wrong_password(world: World) -> None:
    with pytest.raises(AuthenticationError):
        _login(world, "not-the-password")


def _lock_out(world: World) -> None:
    policy = LoginPolicy(max_failures=2)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            auth.authenticate(world.engine, world.a.analyst.username, "wrong-password!", policy=policy)


TEMPORARY = "temporary-password-1"


def _reset_analyst(world: World) -> auth.PendingPasswordChange:
    _in(world, staff.reset_password, world.a.analyst.user_id, TEMPORARY)
    with pytest.raises(auth.PasswordChangeRequired) as required:
        auth.authenticate(world.engine, world.a.analyst.username, TEMPORARY, policy=LoginPolicy())
    return required.value.pending


def _choose_new_password(world: World) -> None:
    auth.complete_password_change(world.engine, _reset_analyst(world), "analysts-own-password")


def _signed_out_by_a_change(world: World) -> None:
    _in(world, staff.set_active, world.a.analyst.user_id, False)
    assert auth.check_session(world.engine, world.a.analyst) is None


def _sso(world: World) -> None:
    config = auth.SSOConfig(tenant_slug="clinic-a", role_claim="groups", role_map={"admins": "admin"})
    auth.actor_from_sso(world.engine, {"email": "lina@a.example", "groups": ["admins"]}, config)


def _new_tenant(world: World) -> None:
    with system_session(world.engine) as session:
        tenants.create_tenant(session, name="North", slug="north")


def _create_staff(world: World) -> None:
    _in(world, staff.create_user, username=world.unique("nora"), password=DEFAULT_PASSWORD, role=Role.ANALYST)


def _as(world: World, role: Role, fn: Callable, *args, **kwargs) -> None:  # type: ignore[type-arg]
    world.call(fn, world.a.by_role(role), *args, **kwargs)


def _skipped_export(world: World) -> None:
    actor = world.a.front_desk
    review = world.call(wizard.dry_run, actor, world.list_draft())
    world.call(wizard.skipped_csv, actor, review)


def _resume_job(world: World) -> None:
    job_id = world.bulk_job()
    _in(world, jobs.pause, job_id)
    _in(world, jobs.resume, job_id)


def _store_credentials(world: World) -> None:
    _in(world, clinic_settings.set_credentials, "unifonic", {"app_sid": "app-sid-1"}, settings=SETTINGS)


def _clear_credentials(world: World) -> None:
    _store_credentials(world)
    assert world.call(clinic_settings.clear_credentials, world.a.admin, "unifonic") is True


def _rotate_dlr_token(world: World) -> None:
    _in(world, clinic_settings.rotate_dlr_token, settings=SETTINGS)  # created
    _in(world, clinic_settings.rotate_dlr_token, settings=SETTINGS)  # rotated


def _change_preferences(world: World) -> None:
    update = patients.PreferenceUpdate(sms_opt_in=False, whatsapp_opt_in=True, email_opt_in=True, language=None,
                                       quiet_hours_start=None, quiet_hours_end=None)
    _as(world, Role.FRONT_DESK, patients.change_preferences, world.a.patient_id, update,
        reason="patient asked by phone")


def _change_contacts(world: World) -> None:
    seen = world.call(patients.patient_detail, world.a.front_desk, world.a.patient_id).patient
    _as(world, Role.FRONT_DESK, patients.change_contacts, world.a.patient_id,
        patients.ContactUpdate("+966509876543", seen.email or "", seen.language), version=seen.version)


def _link_whatsapp(world: World) -> None:
    _in(world, whatsapp_templates.set_whatsapp_link, world.whatsapp_template(), content_sid=CONTENT_SID,
        variable_map={"1": "patient_name"}, fallback_channel=Channel.SMS)


def _background_export(world: World) -> None:
    """The worker's job (no signed-in user): recorded as "export job" once the file is written."""
    export_id = world.requested_export(world.a.analyst)
    message_export.run_export(world.engine, world.a.tenant_id, export_id, directory=world.export_dir)


def _booking() -> records.AppointmentInput:
    return records.AppointmentInput("A-1", "MRN-1", utcnow() + dt.timedelta(days=2),
                                    patient=records.PatientDetails(name_en="Huda"))


def _booked(world: World) -> uuid.UUID:
    return world.call(records.apply, world.a.admin, [_booking()], source="api").appointment_ids[0]


def _thread(world: World) -> uuid.UUID:
    """A patient's WhatsApp reply waiting in clinic A's inbox."""
    return make_reply(world.engine, world.a.tenant_id, address="+966501234567", body="Is 5 pm possible?")


def _reopen_thread(world: World) -> None:
    thread_id = _thread(world)
    world.call(inbox.mark_done, world.a.front_desk, thread_id)
    world.call(inbox.reopen, world.a.front_desk, thread_id)


def _rule_input(world: World) -> reminder_rules.RuleInput:
    return reminder_rules.RuleInput(name=world.unique("SMS 3 h"), channel=Channel.SMS, template_id=world.a.template_id,
                                    offset_minutes=180)


def _reminder_rule(world: World) -> uuid.UUID:
    return world.call(reminder_rules.create_rule, world.a.admin, _rule_input(world)).id


def _rule_off_and_on(world: World) -> None:
    rule_id = _reminder_rule(world)
    _in(world, reminder_rules.set_rule_active, rule_id, False)
    _in(world, reminder_rules.set_rule_active, rule_id, True)


ACTIONS: list[Action] = [
    # signing in and out
    Action("sign in", "auth.login", _login),
    Action("sign in with single sign-on", "auth.login", _sso, by=None),
    Action("wrong password", "auth.login_failed", _wrong_password, by=None),
    Action("locked out", "auth.locked", _lock_out, by=None),
    Action("sign in after a reset", "auth.password_change_required", _reset_analyst, by=None),
    Action("choose a new password after a reset", "auth.password_changed", _choose_new_password, by=Role.ANALYST),
    Action("signed out by an admin's change", "auth.session_revoked", _signed_out_by_a_change, by=Role.ANALYST),
    Action("sign out", "auth.logout", lambda w: auth.record_logout(w.engine, w.a.admin)),
    Action("idle time-out", "auth.timeout", lambda w: auth.record_logout(w.engine, w.a.admin, reason="timeout")),
    # clinics and staff
    Action("create a clinic", "tenant.create", _new_tenant, by=None),
    Action("add staff", "staff.create", _create_staff),
    Action("change a role", "staff.change_role", lambda w: _in(w, staff.change_role, w.a.analyst.user_id,
                                                              Role.FRONT_DESK)),
    Action("deactivate", "staff.deactivate", lambda w: _in(w, staff.set_active, w.a.analyst.user_id, False)),
    Action("reactivate", "staff.activate", lambda w: _in(w, staff.set_active, w.a.analyst.user_id, True)),
    Action("reset a password", "staff.reset_password", lambda w: _in(w, staff.reset_password, w.a.analyst.user_id,
                                                                    "another-long-password")),
    Action("unlock", "staff.unlock", lambda w: _in(w, staff.unlock, w.a.analyst.user_id)),
    Action("contact access", "staff.contact_access", lambda w: _in(w, staff.set_full_contact_access,
                                                                  w.a.analyst.user_id, True)),
    # templates
    Action("create a template", "template.create", lambda w: w.new_template()),
    Action("edit a template", "template.update", lambda w: _in(w, templates.update_template, w.a.template_id,
                                                               body_en="Hi {{ patient_name }}")),
    Action("duplicate a template", "template.duplicate", lambda w: _in(
        w, templates.duplicate_template, w.a.template_id, new_code=w.unique("copy"), new_name="Copy")),
    Action("deactivate a template", "template.deactivate", lambda w: _in(w, templates.set_active,
                                                                         w.a.template_id, False)),
    Action("activate a template", "template.activate", lambda w: _in(w, templates.set_active, w.a.template_id,
                                                                     True)),
    Action("delete a template", "template.delete", lambda w: _in(w, templates.delete_template, w.new_template())),
    Action("restore a version", "template.restore", lambda w: _in(w, templates.restore_version, w.a.template_id, 1)),
    Action("send a test message", "message.send_test", lambda w: _in(w, templates.test_send, w.a.template_id,
                                                                     recipient="+966501112233")),
    # messaging
    Action("send a message", "message.send", lambda w: w.call(
        messaging.send, w.a.front_desk, "SMS", patient_id=w.a.patient_id, template_code="reminder"),
        by=Role.FRONT_DESK),
    Action("bulk send (the scripts' adapter: the wizard's confirm)", "bulk_job.create",
           lambda w: w.messaging.send_bulk_messages(
        ["+966501234567"], "Closed on Friday", "SMS", w.a.tenant_id, actor=w.a.admin)),
    Action("retry a failure", "message.retry", lambda w: w.call(messaging.retry, w.a.front_desk,
                                                                [w.failed_message()]), by=Role.FRONT_DESK),
    Action("cancel a message", "message.cancel", lambda w: w.call(
        messaging.cancel, w.a.front_desk, message_ids=[w.queued_message()]), by=Role.FRONT_DESK),
    Action("cancel a bulk job", "message.cancel", lambda w: w.call(messaging.cancel, w.a.admin,
                                                                   bulk_job_id=w.bulk_job())),
    Action("pause sending", "sending.pause", lambda w: w.call(messaging.pause_sending, w.a.admin, reason="wrong text")),
    Action("resume sending", "sending.resume", lambda w: w.call(messaging.resume_sending, w.a.admin)),
    Action("pause a bulk job", "bulk_job.pause", lambda w: _in(w, jobs.pause, w.bulk_job())),
    Action("resume a bulk job", "bulk_job.resume", _resume_job),
    Action("cancel a bulk job (jobs page)", "bulk_job.cancel", lambda w: _in(w, jobs.cancel, w.bulk_job())),
    Action("confirm a bulk send in the wizard", "bulk_job.create", lambda w: w.wizard_job(w.a.front_desk),
           by=Role.FRONT_DESK),
    Action("download the skipped list", "bulk.skipped_export", _skipped_export, by=Role.FRONT_DESK),
    # patients
    Action("change a patient's preferences", "patient.preferences", _change_preferences, by=Role.FRONT_DESK),
    Action("correct a patient's contacts", "patient.contacts", _change_contacts, by=Role.FRONT_DESK),
    # WhatsApp templates
    Action("link a Content template", "template.whatsapp_link", _link_whatsapp),
    Action("refresh a WhatsApp approval", "template.whatsapp_approval", lambda w: w.refresh_approval(
        w.a.front_desk, w.whatsapp_template(linked=True)), by=Role.FRONT_DESK),
    # clinic settings
    Action("change a route", "settings.route_changed", lambda w: _in(
        w, clinic_settings.set_route, Channel.SMS, SAUDI, [RouteStep("unifonic", "AgdarClinic")])),
    Action("store provider credentials", "settings.credentials_changed", _store_credentials),
    Action("clear provider credentials", "settings.credentials_cleared", _clear_credentials),
    Action("make the delivery-report token", "settings.dlr_token_created", lambda w: _in(
        w, clinic_settings.rotate_dlr_token, settings=SETTINGS)),
    Action("replace the delivery-report token", "settings.dlr_token_rotated", _rotate_dlr_token),
    Action("change time zone and region", "settings.locale_changed", lambda w: _in(
        w, clinic_settings.set_locale, timezone="Asia/Dubai", default_region="AE")),
    Action("change the clinic profile", "settings.profile_changed", lambda w: _in(
        w, clinic_settings.set_profile, clinic_settings.ClinicProfile(
            "Clinic A", "عيادة أ", Language.AR, "", dt.time(9, 0), dt.time(19, 0)))),
    # exports
    Action("export messages", "messages.export", lambda w: w.export_now(w.a.analyst), by=Role.ANALYST),
    Action("request a large export", "messages.export_requested", lambda w: w.requested_export(w.a.analyst),
           by=Role.ANALYST),
    Action("a large export finishes", "messages.export", _background_export, by=None),
    Action("download a large export", "messages.export_download", lambda w: w.call(
        message_export.export_file, w.a.analyst, w.finished_export(w.a.analyst), directory=w.export_dir),
        by=Role.ANALYST),
    Action("download a chart's data", "analytics.export", lambda w: _as(
        w, Role.ANALYST, analytics.record_export, "delivery_rate", rows=3, period=this_week()), by=Role.ANALYST),
    # the audit log itself
    Action("export the audit log", "audit.export", lambda w: _in(w, audit.export_csv)),
    # appointments (issue 20)
    Action("import appointments", "appointments.apply", lambda w: _in(w, records.apply, [_booking()], source="upload")),
    Action("change an appointment's status", "appointment.status", lambda w: w.call(
        records.set_status, w.a.front_desk, _booked(w), AppointmentStatus.NO_SHOW, source="staff"),
        by=Role.FRONT_DESK),
    # the inbox (issue 20)
    Action("assign a thread", "inbox.assign", lambda w: w.call(
        inbox.assign, w.a.front_desk, _thread(w), w.a.front_desk.user_id), by=Role.FRONT_DESK),
    Action("mark a thread done", "inbox.done", lambda w: w.call(inbox.mark_done, w.a.front_desk, _thread(w)),
           by=Role.FRONT_DESK),
    Action("reopen a thread", "inbox.reopen", _reopen_thread, by=Role.FRONT_DESK),
    Action("answer a reply", "inbox.reply", lambda w: w.call(
        inbox.reply, w.a.front_desk, _thread(w), text="See you then.", idempotency_key=w.unique("answer")),
        by=Role.FRONT_DESK),
    # the appointments API's keys (issue 20)
    Action("create an API key", "api_key.create", lambda w: _in(w, api_keys.create, w.unique("HIS"))),
    Action("revoke an API key", "api_key.revoke", lambda w: _in(
        w, api_keys.revoke, w.call(api_keys.create, w.a.admin, w.unique("HIS")).view.id)),
    # reminders (issue 20)
    Action("add a reminder rule", "reminder_rule.create", lambda w: _reminder_rule(w)),
    Action("change a reminder rule", "reminder_rule.update", lambda w: _in(
        w, reminder_rules.update_rule, _reminder_rule(w), _rule_input(w))),
    Action("turn a reminder rule off", "reminder_rule.deactivate", lambda w: _in(
        w, reminder_rules.set_rule_active, _reminder_rule(w), False)),
    Action("turn a reminder rule on", "reminder_rule.activate", _rule_off_and_on),
    Action("change the reminder calendar", "reminder_calendar.update", lambda w: _in(
        w, reminder_rules.set_calendar, reminder_rules.CalendarSettings(weekend_days=(4,)))),
]


def _count(world: World, action: str) -> int:
    with system_session(world.engine) as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


def _latest(world: World, action: str) -> AuditEvent:
    with system_session(world.engine) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.created_at.desc()).limit(1)).one()
        session.expunge(event)
        return event


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name.replace(" ", "-"))
def test_each_action_leaves_an_audit_row(world: World, action: Action) -> None:
    before = _count(world, action.audited_as)

    action.run(world)

    assert _count(world, action.audited_as) == before + 1, f"'{action.name}' left no {action.audited_as} row"
    event = _latest(world, action.audited_as)
    if action.by is not None:
        actor = world.a.by_role(action.by)
        assert (event.actor_id, event.actor_name, event.tenant_id) == (actor.user_id, actor.username,
                                                                       world.a.tenant_id)
    assert event.actor_name, "an audit row always names who did it"


def _recorded_actions(path: Path) -> set[str]:
    """The action strings of every ``audit.record(session, actor, <action>, ...)`` call in a file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit" and len(node.args) >= 3:
            found |= {n.value for n in ast.walk(node.args[2]) if isinstance(n, ast.Constant)
                      and isinstance(n.value, str)}
    return found


def test_the_table_covers_every_audited_action_in_the_code() -> None:
    in_code = set().union(*(_recorded_actions(p) for p in (ROOT / "app").rglob("*.py")))
    assert in_code, "found no audit.record calls: has the audit API moved?"
    assert in_code - {a.audited_as for a in ACTIONS} == set(), "add a line to ACTIONS for each of these"


def test_every_action_has_a_readable_label() -> None:
    assert {a.audited_as for a in ACTIONS} - set(audit.ACTION_LABELS) == set()
