"""One message to one patient (app.services.single_send), with a neighbouring clinic whose patients
share the phone numbers, e-mail addresses and names, on both backends.

The send goes through the real delivery path (the sender, the Twilio SDK) to the loopback Twilio:
the patient of this clinic gets it once, the neighbour's patient with the same number never.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from app.errors import NotFoundError, PermissionDenied, ValidationError
from app.services import passwords, single_send, templates
from app.services.permissions import Actor
from app.services.single_send import OneMessage
from db.enums import Channel, Language, MessageClass, MessageStatus, Role
from db.models import Appointment, AuditEvent, Message, NotificationPreference, Patient
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import call, make_patient, make_tenant, make_user
from tests.neighbours import neighbour_id

NOW = dt.datetime.now(dt.UTC)
SARA_PHONE = "+966501234567"  # the neighbouring clinic has a Sara Ali with this number too


@dataclasses.dataclass
class World:
    engine: Engine
    tenant: uuid.UUID
    admin: Actor
    front: Actor
    analyst: Actor
    sara: uuid.UUID
    queue: RecordingQueue

    def call(self, fn, actor: Actor, *args, **kwargs):  # type: ignore[no-untyped-def]
        return call(self.engine, actor, fn, *args, queue=self.queue, **kwargs)

    def messages(self) -> list[Message]:
        with system_session(self.engine) as session:
            rows = list(session.scalars(select(Message).where(Message.tenant_id == self.tenant)))
            session.expunge_all()
            return rows


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def world(engine: Engine) -> World:
    tenant = make_tenant(engine)
    return World(engine, tenant, make_user(engine, tenant, "amira", Role.ADMIN),
                 make_user(engine, tenant, "fatima", Role.FRONT_DESK), make_user(engine, tenant, "omar", Role.ANALYST),
                 make_patient(engine, tenant, phone=SARA_PHONE), RecordingQueue())


def _template(w: World, *, code: str = "reminder", channel: Channel = Channel.SMS,  # type: ignore[no-untyped-def]
              body_en: str = "Hello {patient_name}", body_ar: str = "",
              message_class: MessageClass = MessageClass.SERVICE, **kwargs) -> uuid.UUID:
    return w.call(templates.create_template, w.admin, code=code, name=code.title(), channel=channel,
                  body_en=body_en, body_ar=body_ar, message_class=message_class, **kwargs).id


def _prefs(w: World, patient_id: uuid.UUID, **values: object) -> None:
    with tenant_session(w.engine, w.tenant) as session:
        pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient_id))
        if pref is None:
            pref = NotificationPreference(patient_id=patient_id)
            session.add(pref)
        for name, value in values.items():
            setattr(pref, name, value)


def draft(w: World, **fields: object) -> OneMessage:
    return OneMessage(**{"patient_id": w.sara, "channel": Channel.SMS, "text": "Please call the clinic.", **fields})


# -- options and preview -------------------------------------------------------------------------


def test_options_show_the_patients_channels_language_and_templates(world: World) -> None:
    _template(world)
    _prefs(world, world.sara, whatsapp_opt_in=False, language=Language.AR)
    got = world.call(single_send.options, world.front, world.sara)

    assert got.patient_name == "Sara Ali" and got.language == Language.AR and got.preferred == Channel.SMS
    reasons = {c.channel: c.reason for c in got.channels}
    assert reasons[Channel.SMS] == "" and "opted out of WhatsApp" in reasons[Channel.WHATSAPP]
    assert [label for _, label in got.templates[Channel.SMS]] == ["Reminder (reminder)"]
    assert got.templates[Channel.EMAIL] == []


def test_the_preview_is_the_editors_check_with_the_patients_own_values(world: World) -> None:
    template = _template(world, body_en="Hi {patient_name}, reply YES to confirm.", body_ar="مرحبا {patient_name}")
    _prefs(world, world.sara, language=Language.AR)
    got = world.call(single_send.preview, world.front, draft(world, template_id=template, text=""))

    assert got.ok and got.language == Language.AR and got.recipient == SARA_PHONE
    assert got.check.preview == "مرحبا سارة علي"  # her Arabic name, not the sample value
    assert got.check.encoding == "UCS-2" and got.check.segments == 1 and got.check.estimated_cost > 0
    assert got.class_rules == tuple(templates.class_rules(MessageClass.SERVICE, Channel.SMS))
    english = world.call(single_send.preview, world.front, draft(world, template_id=template, text="",
                                                                 language=Language.EN))
    assert english.check.preview == "Hi Sara Ali, reply YES to confirm."
    assert english.check.reply_warnings  # the editor's reply lint: SMS is one-way, YES is a carrier keyword


def test_an_appointment_variable_without_an_appointment_asks_for_a_value(world: World) -> None:
    template = _template(world, body_en="See you on {appointment_date}")
    got = world.call(single_send.preview, world.front, draft(world, template_id=template, text=""))
    assert not got.ok and got.needs_values == ("appointment_date",)
    assert "No value for appointment_date" in got.problems[0]

    typed = world.call(single_send.preview, world.front,
                       draft(world, template_id=template, text="", variables={"appointment_date": "Sunday"}))
    assert typed.ok and typed.check.preview == "See you on Sunday"

    with tenant_session(world.engine, world.tenant) as session:
        session.add(Appointment(patient_id=world.sara, starts_at=NOW + dt.timedelta(days=2)))
    booked = world.call(single_send.preview, world.front, draft(world, template_id=template, text=""))
    local = (NOW + dt.timedelta(days=2)).astimezone(zoneinfo.ZoneInfo("Asia/Riyadh"))
    assert booked.ok and booked.check.preview == f"See you on {local:%Y-%m-%d}"


def test_quiet_hours_and_the_promotional_window_say_when_it_goes(world: World) -> None:
    _prefs(world, world.sara, quiet_hours_start=dt.time(0, 0), quiet_hours_end=dt.time(23, 59))
    got = world.call(single_send.preview, world.front, draft(world))
    assert got.ok and any("Quiet hours" in note for note in got.notes)

    urgent = world.call(single_send.preview, world.front, draft(world, urgent=True))
    assert urgent.ok and urgent.notes == ()


def test_an_own_promotional_text_follows_the_class_rules(world: World) -> None:
    promo = draft(world, text="20% off check-ups this week.", message_class=MessageClass.PROMOTIONAL)
    refused = world.call(single_send.preview, world.front, promo)
    assert refused.problems == ("No recorded consent to promotional messages.",)
    assert refused.class_rules == tuple(templates.class_rules(MessageClass.PROMOTIONAL, Channel.SMS))

    _prefs(world, world.sara, promotional_consent=True)
    clinical = world.call(single_send.preview, world.front,
                          draft(world, text="Dr {doctor_name} offers 20% off.", message_class=MessageClass.PROMOTIONAL,
                                variables={"doctor_name": "Ahmed"}))
    assert any("may not include clinical details (doctor_name)" in p for p in clinical.problems)

    world.call(single_send.send, world.front, promo, idempotency_key="promo",
               now=dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC))  # 11:00 in Riyadh: inside the window
    [message] = world.messages()
    assert message.message_class == MessageClass.PROMOTIONAL


# -- bad input: a clear message, nothing sent ----------------------------------------------------


@pytest.mark.parametrize(("fields", "expected"), [
    ({"text": "   "}, "Write the text of the message."),
    ({"text": "Hello {patient_nmae}"}, "Unknown variable 'patient_nmae'. Did you mean 'patient_name'?"),
    ({"text": "x" * 1601}, "Too long: SMS allows at most 1,600 characters"),
    ({"send_at_local": dt.datetime(2020, 1, 1, 9, 0)}, "is in the past"),
    ({"channel": Channel.WHATSAPP}, "WhatsApp delivers only an approved template"),
])
def test_bad_input_is_refused_in_plain_words_and_sends_nothing(world: World, fields: dict, expected: str) -> None:
    with pytest.raises(ValidationError, match=None) as refused:
        world.call(single_send.send, world.front, draft(world, **fields), idempotency_key=single_send.new_key())
    assert expected in str(refused.value)
    assert world.messages() == [] and world.queue.deliveries == []


def test_an_opted_out_patient_or_a_missing_phone_is_refused(world: World) -> None:
    _prefs(world, world.sara, sms_opt_in=False)
    with pytest.raises(ValidationError, match="opted out of SMS"):
        world.call(single_send.send, world.front, draft(world), idempotency_key="k1")
    no_phone = make_patient(world.engine, world.tenant, name_en="Noor", phone=None, email="noor@example.com")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Noor has no mobile number on record"):
        world.call(single_send.send, world.front, draft(world, patient_id=no_phone), idempotency_key="k2")
    assert world.messages() == []


def test_an_unknown_template_or_another_clinics_patient_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError, match="template does not exist"):
        world.call(single_send.send, world.front, draft(world, template_id=uuid.uuid4()), idempotency_key="k")
    with system_session(world.engine) as session:
        neighbours_sara = session.scalar(select(Patient.id).where(
            Patient.tenant_id == neighbour_id(world.engine), Patient.phone_e164 == SARA_PHONE))
    with pytest.raises(NotFoundError, match="patient does not exist in your clinic"):
        world.call(single_send.send, world.front, draft(world, patient_id=neighbours_sara), idempotency_key="k")
    assert world.messages() == []


def test_the_analyst_cannot_send_or_preview(world: World) -> None:
    for fn, kwargs in ((single_send.send, {"idempotency_key": "k"}), (single_send.preview, {})):
        with pytest.raises(PermissionDenied):
            world.call(fn, world.analyst, draft(world), **kwargs)
    with pytest.raises(PermissionDenied):
        world.call(single_send.options, world.analyst, world.sara)
    assert world.messages() == []


# -- the send ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN])
def test_a_double_submit_sends_once_and_is_audited(world: World, role: Role) -> None:
    actor = world.front if role == Role.FRONT_DESK else world.admin
    one = draft(world, text="Your results are ready, {patient_first_name}.")
    first = world.call(single_send.send, actor, one, idempotency_key="form-1")
    again = world.call(single_send.send, actor, one, idempotency_key="form-1")

    assert again.message_id == first.message_id and again.note == "already submitted"
    [message] = world.messages()
    assert message.patient_id == world.sara and message.recipient == SARA_PHONE
    assert message.body == "Your results are ready, Sara." and message.created_by_id == actor.user_id
    assert [i for _, ids in world.queue.deliveries for i in ids] == [str(message.id)]
    with tenant_session(world.engine, world.tenant) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "message.send")).all()
    assert [(str(e.object_id), e.actor_id) for e in events] == [(str(message.id), actor.user_id)]


def test_a_scheduled_send_waits_on_the_clinics_clock(world: World) -> None:
    local = (NOW + dt.timedelta(days=1)).astimezone(zoneinfo.ZoneInfo("Asia/Riyadh")).replace(
        tzinfo=None, second=0, microsecond=0)
    result = world.call(single_send.send, world.front, draft(world, send_at_local=local), idempotency_key="later")

    assert result.status == MessageStatus.SCHEDULED and world.queue.deliveries == []
    [message] = world.messages()
    assert message.scheduled_at == local.replace(tzinfo=zoneinfo.ZoneInfo("Asia/Riyadh")).astimezone(dt.UTC)


def test_the_patients_language_and_an_arabic_own_text(world: World) -> None:
    _prefs(world, world.sara, language=Language.AR)
    world.call(single_send.send, world.front, draft(world, text="مرحبا {patient_first_name}"), idempotency_key="ar")
    [message] = world.messages()
    assert message.language == Language.AR and message.body == "مرحبا سارة"


def test_an_email_template_goes_to_the_patients_address(world: World) -> None:
    template = _template(world, code="letter", channel=Channel.EMAIL, body_en="Dear {patient_name}",
                         subject_en="Your visit")
    got = world.call(single_send.send, world.front, draft(world, channel=Channel.EMAIL, template_id=template,
                                                          text=""), idempotency_key="mail")
    [message] = world.messages()
    assert got.recipient == "sara@example.com" and message.subject == "Your visit"
    assert message.template_id == template


def test_it_reaches_this_clinics_patient_once_through_twilio_never_the_neighbours(
        world: World, fake_twilio) -> None:  # type: ignore[no-untyped-def]
    from app.delivery.ratelimit import LocalRateLimiter
    from app.delivery.runtime import Runtime
    from app.providers.registry import build_providers

    settings = delivery_settings(world.engine, fake_twilio)
    runtime = Runtime(world.engine, settings, build_providers(settings), LocalRateLimiter(), world.queue)
    one = draft(world, text="Hello {patient_name}")
    world.call(single_send.send, world.front, one, idempotency_key="twice")
    world.call(single_send.send, world.front, one, idempotency_key="twice")
    world.queue.drain(runtime)

    assert fake_twilio.count_by_to() == {SARA_PHONE: 1}
    assert [s.params.get("Body") for s in fake_twilio.sends] == ["Hello Sara Ali"]
    [message] = world.messages()
    assert message.status == MessageStatus.SENT
    with system_session(world.engine) as session:
        neighbours = session.scalars(select(Message.status).where(Message.tenant_id == neighbour_id(world.engine)))
        assert set(neighbours) == {MessageStatus.DELIVERED}  # only the neighbour's own history
