"""Reminder rules and the clinic calendar as admins edit them: checked with clear messages, nothing
half-written, every change audited with its old and new values, and the unsent reminders follow."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sqlalchemy import Engine, func, select

from app.errors import ConflictError, PermissionDenied, ValidationError
from app.services import templates
from app.services.reminders import rules
from app.services.reminders.rules import CalendarSettings, RuleInput
from db.enums import Channel, MessageClass, ReminderShift, ReminderStatus
from db.models import AuditEvent, ClinicCalendar, ReminderRule
from db.session import tenant_session
from tests.services.reminder_support import NOW, SUNDAY_10, WHATSAPP_48H, Clinic, approve, make_clinic, riyadh


@pytest.fixture
def clinics(engine: Engine) -> tuple[Clinic, Clinic]:
    return make_clinic(engine, "clinic-a"), make_clinic(engine, "clinic-b")


def _call(clinic: Clinic, fn, *args, actor=None, **kwargs):  # type: ignore[no-untyped-def]
    with tenant_session(clinic.engine, clinic.tenant_id) as session:
        return fn(session, actor or clinic.admin, *args, **kwargs)


def _audits(clinic: Clinic, action: str) -> list[AuditEvent]:
    with tenant_session(clinic.engine, clinic.tenant_id) as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.created_at)))
        session.expunge_all()
    return rows


def _rule_count(clinic: Clinic) -> int:
    with tenant_session(clinic.engine, clinic.tenant_id) as session:
        return session.scalar(select(func.count()).select_from(ReminderRule)) or 0


def _sms(clinic: Clinic, **changes: object) -> RuleInput:
    return replace(RuleInput(name="SMS 3 h before", channel=Channel.SMS, template_id=clinic.sms_template,
                             offset_minutes=180), **changes)


def test_create_and_list_a_rule_audited_with_its_values(clinics) -> None:
    a, _ = clinics
    created = _call(a, rules.create_rule, _sms(a, appointment_types=(" Dental ", "dental", "Checkup"),
                                                  departments=("Pediatrics",)), now=NOW)
    assert (created.revision, created.offset_text, created.template_label) == (
        1, "3 h before", "SMS reminder (sms_reminder)")
    assert created.appointment_types == ("Dental", "Checkup")  # trimmed, the same type once
    assert [r.name for r in _call(a, rules.list_rules)] == ["SMS 3 h before"]
    [event] = _audits(a, "reminder_rule.create")
    assert (event.actor_id, event.object_id) == (a.admin.user_id, str(created.id))
    assert event.details["offset_minutes"] == 180 and event.details["channel"] == "sms"


def test_an_update_moves_the_revision_on_and_audits_old_and_new(clinics) -> None:
    a, _ = clinics
    created = _call(a, rules.create_rule, _sms(a), now=NOW)
    updated = _call(a, rules.update_rule, created.id, _sms(a, offset_minutes=120, shift=ReminderShift.LATER), now=NOW)
    assert (updated.revision, updated.offset_minutes, updated.shift) == (2, 120, ReminderShift.LATER)
    [event] = _audits(a, "reminder_rule.update")
    assert event.details["changed"] == {"offset_minutes": [180, 120], "shift": ["earlier", "later"]}
    # the same values again: nothing written
    again = _call(a, rules.update_rule, created.id, _sms(a, offset_minutes=120, shift=ReminderShift.LATER), now=NOW)
    assert again.revision == 2 and len(_audits(a, "reminder_rule.update")) == 1


def test_turning_off_and_on_is_audited(clinics) -> None:
    a, _ = clinics
    created = _call(a, rules.create_rule, _sms(a), now=NOW)
    off = _call(a, rules.set_rule_active, created.id, False, now=NOW)
    on = _call(a, rules.set_rule_active, created.id, True, now=NOW)
    assert (off.is_active, off.revision, on.is_active, on.revision) == (False, 2, True, 3)
    assert len(_audits(a, "reminder_rule.deactivate")) == len(_audits(a, "reminder_rule.activate")) == 1


@pytest.mark.parametrize("changes,field,words", [
    ({"offset_minutes": 4}, "offset_minutes", "between 5 minutes and 30 days"),
    ({"offset_minutes": 30 * 24 * 60 + 1}, "offset_minutes", "between 5 minutes and 30 days"),
    ({"name": "  "}, "name", "Give the rule a name"),
    ({"name": "x" * 101}, "name", "at most 100"),
    ({"name": "bad\x00name"}, "name", "NUL"),
    ({"template_id": None}, "template_id", "Choose the template"),
    ({"channel": Channel.WHATSAPP}, "template_id", "is for SMS, not WhatsApp"),
    ({"fallback_channel": Channel.SMS}, "fallback_channel", "must differ"),
    ({"fallback_channel": Channel.WHATSAPP}, "fallback_channel", "WhatsApp cannot be a fallback"),
    ({"departments": tuple(f"D{n}" for n in range(51))}, "departments", "at most 50"),
    ({"appointment_types": ("x" * 121,)}, "appointment_types", "at most 120"),
])
def test_bad_rules_are_refused_with_a_clear_message_and_nothing_is_written(clinics, changes, field, words) -> None:
    a, _ = clinics
    with pytest.raises(ValidationError) as refused:
        _call(a, rules.create_rule, _sms(a, **changes), now=NOW)
    assert refused.value.field == field and words in str(refused.value)
    assert _rule_count(a) == 0 and _audits(a, "reminder_rule.create") == []


def test_a_whatsapp_rule_needs_a_template_approved_by_whatsapp(clinics) -> None:
    a, _ = clinics
    approve(a.engine, a.whatsapp_template, status="pending")
    data = RuleInput(name="WhatsApp 48 h", channel=Channel.WHATSAPP, template_id=a.whatsapp_template,
                     offset_minutes=48 * 60)
    with pytest.raises(ValidationError) as refused:
        _call(a, rules.create_rule, data, now=NOW)
    assert "outside their 24-hour window" in str(refused.value) and "not approved" in str(refused.value)
    approve(a.engine, a.whatsapp_template)
    assert _call(a, rules.create_rule, data, now=NOW).channel == Channel.WHATSAPP


def test_templates_that_cannot_serve_are_refused(clinics) -> None:
    a, b = clinics
    with tenant_session(a.engine, a.tenant_id) as session:
        promo = templates.create_template(session, a.admin, code="offer", name="Offer", channel=Channel.SMS,
                                          body_en="Teeth whitening this week at {{ clinic_name }}",
                                          message_class=MessageClass.PROMOTIONAL).id
        inactive = templates.create_template(session, a.admin, code="old", name="Old", channel=Channel.SMS,
                                             body_en="Hello {{ patient_name }}").id
        templates.set_active(session, a.admin, inactive, False)
    cases = [
        ({"template_id": promo}, "promotional"),
        ({"template_id": inactive}, "is not active"),
        ({"template_id": b.sms_template}, "does not exist in your clinic"),  # another clinic's template
        ({"confirm_ack_template_id": a.email_template}, "is for Email, not SMS or WhatsApp"),
        ({"cancel_ack_template_id": b.sms_template}, "does not exist in your clinic"),
    ]
    for changes, words in cases:
        with pytest.raises(ValidationError) as refused:
            _call(a, rules.create_rule, _sms(a, **changes), now=NOW)
        assert words in str(refused.value), changes
    assert _rule_count(a) == 0


def test_acknowledgement_templates_and_an_email_fallback_are_kept(clinics) -> None:
    a, _ = clinics
    created = _call(a, rules.create_rule, _sms(a, fallback_channel=Channel.EMAIL,
                                                  confirm_ack_template_id=a.whatsapp_template,
                                                  cancel_ack_template_id=a.sms_template), now=NOW)
    assert (created.fallback_channel, created.confirm_ack_template_id, created.cancel_ack_template_id) == (
        Channel.EMAIL, a.whatsapp_template, a.sms_template)


def test_two_rules_cannot_share_a_name_but_two_clinics_can(clinics) -> None:
    a, b = clinics
    _call(a, rules.create_rule, _sms(a), now=NOW)
    with pytest.raises(ConflictError):
        _call(a, rules.create_rule, _sms(a, offset_minutes=60), now=NOW)
    _call(b, rules.create_rule, _sms(b), now=NOW)
    assert [r.name for r in _call(b, rules.list_rules)] == ["SMS 3 h before"]
    assert len(_call(a, rules.list_rules)) == 1


def test_another_clinics_rule_is_not_found(clinics) -> None:
    a, b = clinics
    created = _call(a, rules.create_rule, _sms(a), now=NOW)
    from app.errors import NotFoundError

    with pytest.raises(NotFoundError):
        _call(b, rules.update_rule, created.id, _sms(b), now=NOW)
    with pytest.raises(NotFoundError):
        _call(b, rules.set_rule_active, created.id, False, now=NOW)


@pytest.mark.parametrize("role", ["front_desk", "analyst"])
def test_only_admins_manage_rules_and_the_calendar(clinics, role) -> None:
    a, _ = clinics
    actor = getattr(a, role)
    for fn, args in ((rules.list_rules, ()), (rules.rule_options, ()), (rules.create_rule, (_sms(a),)),
                     (rules.get_calendar, ()), (rules.set_calendar, (CalendarSettings(),))):
        with pytest.raises(PermissionDenied):
            _call(a, fn, *args, actor=actor)


def test_rule_options_offer_the_clinics_templates_types_and_departments(clinics) -> None:
    a, b = clinics
    a.book(SUNDAY_10, appointment_type="Dental", department="Pediatrics")
    b.book(SUNDAY_10, appointment_type="B only", department="B dept")
    options = _call(a, rules.rule_options)
    assert (options.appointment_types, options.departments) == (["Dental"], ["Pediatrics"])
    assert [label for _id, label in options.templates[Channel.SMS]] == ["SMS reminder (sms_reminder)"]


# -- the calendar --------------------------------------------------------------------------------


def test_a_clinic_without_a_calendar_has_the_saudi_defaults_and_the_coming_holidays(clinics) -> None:
    a, _ = clinics
    view = _call(a, rules.get_calendar, today=dt.date(2026, 12, 6))
    assert view.is_default and view.settings == CalendarSettings()
    assert view.settings.weekend_days == (4, 5) and view.region == "SA"
    names = {name for _day, name in view.coming_holidays}
    assert {"Eid al-Fitr Holiday", "Eid al-Adha Holiday", "Founding Day Holiday"} <= names
    assert view.next_ramadan == (dt.date(2027, 2, 8), dt.date(2027, 3, 8))  # 1 Shawwal 1448 is 9 March


def test_saving_the_calendar_is_audited_and_unsent_reminders_move_with_it(clinics) -> None:
    a, _ = clinics
    a.rule(**WHATSAPP_48H)
    booked = a.book(SUNDAY_10)
    assert a.reminders(booked)["WhatsApp 48 h before"].due_at == riyadh(2026, 12, 10, 20, 59)
    saturday_only = CalendarSettings(weekend_days=(5,), send_start=dt.time(8, 0), send_end=dt.time(20, 0),
                                     closed_dates=(dt.date(2026, 12, 24),))
    view = _call(a, rules.set_calendar, saturday_only, now=NOW)
    assert not view.is_default and view.settings == saturday_only
    reminder = a.reminders(booked)["WhatsApp 48 h before"]
    assert (reminder.due_at, reminder.moved_reason, reminder.status) == (
        riyadh(2026, 12, 11, 10), "", ReminderStatus.PENDING)  # Friday is a working day now
    [event] = _audits(a, "reminder_calendar.update")
    assert event.details["changed"]["weekend_days"] == [[4, 5], [5]]
    assert event.details["changed"]["send_start"] == ["09:00", "08:00"]
    assert event.details["changed"]["closed_dates"] == [[], ["2026-12-24"]]


@pytest.mark.parametrize("settings,field", [
    (CalendarSettings(send_start=dt.time(21, 0), send_end=dt.time(9, 0)), "send_start"),
    (CalendarSettings(send_start=dt.time(9, 0), send_end=dt.time(9, 0)), "send_start"),
    (CalendarSettings(ramadan_start=dt.time(23, 0), ramadan_end=dt.time(10, 0)), "ramadan_start"),
    (CalendarSettings(weekend_days=(0, 1, 2, 3, 4, 5, 6)), "weekend_days"),
    (CalendarSettings(weekend_days=(7,)), "weekend_days"),
    (CalendarSettings(closed_dates=tuple(dt.date(2027, 1, 1) + dt.timedelta(days=n) for n in range(367))),
     "closed_dates"),
])
def test_a_bad_calendar_is_refused_and_nothing_is_saved(clinics, settings, field) -> None:
    a, _ = clinics
    with pytest.raises(ValidationError) as refused:
        _call(a, rules.set_calendar, settings, now=NOW)
    assert refused.value.field == field
    with tenant_session(a.engine, a.tenant_id) as session:
        assert session.scalar(select(func.count()).select_from(ClinicCalendar)) == 0


def test_one_clinics_calendar_is_not_anothers(clinics) -> None:
    a, b = clinics
    _call(a, rules.set_calendar, CalendarSettings(weekend_days=(6,)), now=NOW)
    assert _call(b, rules.get_calendar).is_default
