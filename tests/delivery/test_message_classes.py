"""Message classes: promotional messages need consent and go out only in the daytime window
(clinic time); service messages have no window, only the patient's own quiet hours."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo

import pytest
from sqlalchemy import Engine, select

from app.config import Settings
from app.delivery import sweeper
from app.delivery.policy import NO_PROMOTIONAL_CONSENT, decide
from app.providers.dev_outbox import DevOutboxProvider
from app.services import clinic_settings, messaging, templates
from db.enums import Channel, MessageClass, MessageStatus, Role
from db.models import Message, NotificationPreference, Patient
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call, make_patient, make_tenant, make_user
from tests.neighbours import neighbour_id

RIYADH = zoneinfo.ZoneInfo("Asia/Riyadh")
DAY = dt.date(2026, 12, 1)
WINDOW_REASON = "Promotional messages are sent between 09:00 and 19:00 clinic time."


def _riyadh(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(dt.UTC)


def _patient() -> Patient:
    return Patient(name_en="Sara", phone_e164="+966501234567", is_active=True, deleted_at=None)


def _preference(*, consent: bool = True, quiet: tuple[dt.time, dt.time] | None = None) -> NotificationPreference:
    return NotificationPreference(
        sms_opt_in=True, whatsapp_opt_in=True, email_opt_in=True, promotional_consent=consent,
        quiet_hours_start=quiet[0] if quiet else None, quiet_hours_end=quiet[1] if quiet else None,
    )


def _decide(now: dt.datetime, *, message_class: MessageClass = MessageClass.PROMOTIONAL, urgent: bool = False,
            preference: NotificationPreference | None = None, **kwargs):  # type: ignore[no-untyped-def]
    return decide(channel=Channel.SMS, patient=_patient(), preference=preference or _preference(),
                  urgent=urgent, message_class=message_class, timezone="Asia/Riyadh", now=now, **kwargs)


# -- the rule ------------------------------------------------------------------------------------


def test_promotional_before_the_window_waits_for_nine_the_same_day() -> None:
    decision = _decide(_riyadh(8, 30))
    assert not decision.send and decision.suppress_reason is None
    assert decision.defer_until == _riyadh(9, 0) == dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
    assert decision.defer_reason == WINDOW_REASON


def test_promotional_after_the_window_waits_for_nine_the_next_day() -> None:
    decision = _decide(_riyadh(19, 30))
    assert decision.defer_until == _riyadh(9, 0, DAY + dt.timedelta(days=1))
    assert decision.defer_reason == WINDOW_REASON
    assert _decide(_riyadh(19, 0)).defer_until == _riyadh(9, 0, DAY + dt.timedelta(days=1))  # end is exclusive
    assert _decide(_riyadh(2, 0)).defer_until == _riyadh(9, 0)  # after midnight: the same local day


def test_promotional_inside_the_window_with_consent_sends() -> None:
    assert _decide(_riyadh(12, 0)).send
    assert _decide(_riyadh(9, 0)).send


def test_promotional_still_needs_consent_inside_the_window() -> None:
    decision = _decide(_riyadh(12, 0), preference=_preference(consent=False))
    assert not decision.send and decision.defer_until is None
    assert decision.suppress_reason == "No recorded consent to promotional messages."
    # ... and outside it: no consent is a refusal, not a wait
    assert _decide(_riyadh(22, 0), preference=_preference(consent=False)).defer_until is None


@pytest.mark.parametrize("patient", [None, _patient()], ids=["number-matching-no-patient", "patient-no-preferences"])
@pytest.mark.parametrize("hour", [12, 22])  # inside and outside the window: a refusal either way, never a wait
def test_promotional_without_any_preferences_has_no_consent_on_record(patient: Patient | None, hour: int) -> None:
    decision = decide(channel=Channel.SMS, patient=patient, preference=None, urgent=False,
                      message_class=MessageClass.PROMOTIONAL, timezone="Asia/Riyadh", now=_riyadh(hour, 0))
    assert not decision.send and decision.defer_until is None
    assert decision.suppress_reason == NO_PROMOTIONAL_CONSENT == "No recorded consent to promotional messages."


def test_a_service_message_to_a_number_matching_no_patient_still_sends() -> None:
    assert decide(channel=Channel.SMS, patient=None, preference=None, urgent=False, message_class=MessageClass.SERVICE,
                  timezone="Asia/Riyadh", now=_riyadh(23, 0)).send


def test_urgent_does_not_bypass_the_promotional_window() -> None:
    decision = _decide(_riyadh(23, 0), urgent=True)
    assert not decision.send and decision.defer_until == _riyadh(9, 0, DAY + dt.timedelta(days=1))


def test_service_messages_have_no_window() -> None:
    assert _decide(_riyadh(23, 0), message_class=MessageClass.SERVICE).send
    assert _decide(_riyadh(3, 0), message_class=MessageClass.SERVICE, preference=_preference(consent=False)).send


def test_service_messages_still_respect_the_patients_quiet_hours() -> None:
    quiet = _preference(quiet=(dt.time(22, 0), dt.time(7, 0)))
    decision = _decide(_riyadh(23, 0), message_class=MessageClass.SERVICE, preference=quiet)
    assert decision.defer_until == _riyadh(7, 0, DAY + dt.timedelta(days=1))
    assert "Quiet hours" in (decision.defer_reason or "")
    assert _decide(_riyadh(23, 0), message_class=MessageClass.SERVICE, preference=quiet, urgent=True).send


def test_the_window_is_a_parameter_in_the_clinics_zone() -> None:
    window = (dt.time(10, 0), dt.time(12, 0))
    decision = _decide(_riyadh(9, 30), promotional_window=window)
    assert decision.defer_until == _riyadh(10, 0)
    assert decision.defer_reason == "Promotional messages are sent between 10:00 and 12:00 clinic time."
    assert _decide(_riyadh(11, 0), promotional_window=window).send
    assert _decide(_riyadh(12, 30), promotional_window=window).defer_until == _riyadh(10, 0, DAY + dt.timedelta(days=1))
    # The same instant in a clinic elsewhere: 06:00 UTC is 07:00 in Berlin (before 09:00)
    berlin = decide(channel=Channel.SMS, patient=_patient(), preference=_preference(), urgent=False,
                    message_class=MessageClass.PROMOTIONAL, timezone="Europe/Berlin", now=_riyadh(9, 0))
    assert berlin.defer_until == dt.datetime(2026, 12, 1, 9, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))


def test_window_settings_default_and_validate() -> None:
    assert Settings().promotional_window() == (dt.time(9, 0), dt.time(19, 0))
    custom = Settings(promotional_window_start="8:30", promotional_window_end="20:00")
    assert custom.promotional_window_start == "08:30"
    assert custom.promotional_window() == (dt.time(8, 30), dt.time(20, 0))
    with pytest.raises(ValueError, match="not a time of day"):
        Settings(promotional_window_end="7pm")


# -- through the sender ------------------------------------------------------------------------


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = DevOutboxProvider.send

    def recording(self, message):  # type: ignore[no-untyped-def]
        calls.append(message.recipient)
        return original(self, message)

    monkeypatch.setattr(DevOutboxProvider, "send", recording)
    return calls


def _promotional_setup(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss", Role.ADMIN)
    patient = make_patient(engine, tenant, phone="+966501234567")
    with tenant_session(engine, tenant) as session:
        session.add(NotificationPreference(patient_id=patient, promotional_consent=True,
                                           promotional_consent_at=utcnow()))
        templates.create_template(session, admin, code="flu-day", name="Flu vaccination day", channel="sms",
                                  message_class="promotional", body_en="Free flu shots this Saturday.")
    return tenant, patient


def _message(engine: Engine, message_id: uuid.UUID) -> Message:
    with system_session(engine) as session:
        message = session.scalar(select(Message).where(Message.id == message_id))
        assert message is not None
        session.expunge(message)
        return message


def test_promotional_outside_the_window_waits_in_scheduled_then_goes_once(
    engine: Engine, make_runtime, provider_calls: list[str],
) -> None:
    tenant, patient = _promotional_setup(engine)
    runtime, queue = make_runtime()
    evening = _riyadh(20, 0, utcnow().date() + dt.timedelta(days=2))
    runtime.clock = lambda: evening
    sent = call(engine, tenant, messaging.send, "sms", patient_id=patient, template_code="flu-day", queue=queue)
    assert queue.drain(runtime) == {"deferred": 1}
    assert provider_calls == []
    waiting = _message(engine, sent.message_id)
    assert waiting.message_class == MessageClass.PROMOTIONAL
    assert waiting.status == MessageStatus.SCHEDULED and waiting.status_reason == WINDOW_REASON
    next_morning = _riyadh(9, 0, evening.astimezone(RIYADH).date() + dt.timedelta(days=1))
    assert waiting.scheduled_at == next_morning
    runtime.clock = lambda: next_morning - dt.timedelta(minutes=1)  # not yet
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert provider_calls == []
    runtime.clock = lambda: next_morning + dt.timedelta(seconds=1)
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert provider_calls == ["+966501234567"]
    assert _message(engine, sent.message_id).status in (MessageStatus.SENT, MessageStatus.DELIVERED)


def test_the_sender_uses_the_clinics_own_window(engine: Engine, make_runtime, provider_calls: list[str]) -> None:
    tenant, patient = _promotional_setup(engine)
    profile = call(engine, tenant, clinic_settings.get_clinic_settings).profile
    call(engine, tenant, clinic_settings.set_profile, dataclasses.replace(
        profile, promotional_window_start=dt.time(21, 0), promotional_window_end=dt.time(23, 0)))
    neighbour = neighbour_id(engine)  # keeps the default window, 09:00-19:00
    runtime, queue = make_runtime()
    day = utcnow().date() + dt.timedelta(days=2)
    runtime.clock = lambda: _riyadh(12, 0, day)  # inside the default window, outside this clinic's
    sent = call(engine, tenant, messaging.send, "sms", patient_id=patient, template_code="flu-day", queue=queue)
    call(engine, neighbour, templates.create_template, code="flu-day", name="Flu day", channel="sms",
         message_class="promotional", body_en="Free flu shots this Saturday.")
    with tenant_session(engine, neighbour) as session:
        their_patient = session.scalar(select(Patient.id).where(Patient.phone_e164 == "+966501234567"))
    theirs = call(engine, neighbour, messaging.send, "sms", patient_id=their_patient, template_code="flu-day",
                  queue=queue)
    queue.drain(runtime)
    assert provider_calls == ["+966501234567"]
    assert _message(engine, theirs.message_id).status != MessageStatus.SCHEDULED
    waiting = _message(engine, sent.message_id)
    assert waiting.scheduled_at == _riyadh(21, 0, day)
    assert waiting.status_reason == "Promotional messages are sent between 21:00 and 23:00 clinic time."


def test_service_message_at_night_reaches_the_provider(engine: Engine, make_runtime,
                                                       provider_calls: list[str]) -> None:
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone="+966507654321")
    runtime, queue = make_runtime()
    runtime.clock = lambda: _riyadh(2, 0, utcnow().date() + dt.timedelta(days=2))
    sent = call(engine, tenant, messaging.send, "sms", patient_id=patient, text="Results are ready.", queue=queue)
    queue.drain(runtime)
    assert provider_calls == ["+966507654321"]
    assert _message(engine, sent.message_id).status in (MessageStatus.SENT, MessageStatus.DELIVERED)
