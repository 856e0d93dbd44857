"""Messages not yet sent go to a patient's corrected contact, through the worker and the loopback
Twilio; a removed contact cancels what waited for it; a new language renders waiting template
messages again; a claimed message and the neighbouring clinic's patient with the same number are
untouched."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.delivery import sweeper
from app.services import messaging, templates
from db.enums import Channel, Language, MessageStatus
from db.models import Message, MessageLog, Patient
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call
from tests.neighbours import neighbour_id
from tests.services.test_patient_contacts import NEW_PHONE, OLD_PHONE, _edit, _neighbour_sara, _row
from tests.services.test_patient_contacts import clinic as clinic  # the fixture


def _waiting_messages(engine, tenant, front, sara, queue):  # type: ignore[no-untyped-def]
    at = utcnow() + dt.timedelta(hours=2)
    return {
        "scheduled_sms": call(engine, front, messaging.schedule, "sms", at, patient_id=sara, text="See you at 10",
                              queue=queue).message_id,
        "queued_whatsapp": call(engine, front, messaging.send, "whatsapp", patient_id=sara, text="Hello",
                                queue=queue).message_id,
        "queued_email": call(engine, front, messaging.send, "email", patient_id=sara, text="Hello",
                             subject="Hi", queue=queue).message_id,
    }, at


def test_messages_not_yet_sent_go_to_the_new_number_through_the_worker(engine, make_runtime, fake_twilio,
                                                                        clinic) -> None:
    tenant, front, sara = clinic
    runtime, queue = make_runtime(fake_twilio)
    neighbour = neighbour_id(engine)
    neighbour_sara = _neighbour_sara(engine)
    theirs = call(engine, neighbour, messaging.send, "sms", patient_id=neighbour_sara.id, text="Neighbour",
                  queue=queue).message_id
    sent_before = call(engine, front, messaging.send, "sms", patient_id=sara, text="Already out", queue=queue)
    queue.drain(runtime)
    ids, at = _waiting_messages(engine, tenant, front, sara, queue)
    fake_twilio.reset()

    change = _edit(engine, front, sara, phone=NEW_PHONE, email="sara.new@example.com")

    assert change.readdressed == 3 and change.cancelled == 0
    runtime.clock = lambda: at + dt.timedelta(seconds=1)
    queue.drain(runtime)
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert fake_twilio.count_by_to() == {NEW_PHONE: 1, f"whatsapp:{NEW_PHONE}": 1}
    assert _row(engine, Message, ids["queued_email"]).recipient == "sara.new@example.com"
    assert _row(engine, Message, sent_before.message_id).recipient == OLD_PHONE  # history is not rewritten
    assert _row(engine, Message, theirs).recipient == OLD_PHONE  # the neighbour's message is untouched
    with system_session(engine) as session:
        events = session.scalars(select(MessageLog.message_id).where(MessageLog.event == "readdressed")).all()
    assert sorted(map(str, events)) == sorted(str(i) for i in ids.values())


def test_removing_a_contact_cancels_the_messages_waiting_for_it(engine, make_runtime, fake_twilio, clinic) -> None:
    tenant, front, sara = clinic
    runtime, queue = make_runtime(fake_twilio)
    ids, _at = _waiting_messages(engine, tenant, front, sara, queue)

    change = _edit(engine, front, sara, email="")

    assert (change.readdressed, change.cancelled) == (0, 1)
    email = _row(engine, Message, ids["queued_email"])
    assert email.status == MessageStatus.CANCELLED and "removed by staff" in email.status_reason
    assert _row(engine, Message, ids["queued_whatsapp"]).status == MessageStatus.QUEUED
    assert _row(engine, Patient, sara).email is None
    queue.drain(runtime)
    assert {r.params["To"] for r in fake_twilio.sends} == {f"whatsapp:{OLD_PHONE}"}


def test_a_message_already_claimed_by_a_worker_keeps_its_number(engine, clinic) -> None:
    tenant, front, sara = clinic
    with tenant_session(engine, tenant) as session:
        sending = Message(patient_id=sara, recipient=OLD_PHONE, channel=Channel.SMS, status=MessageStatus.SENDING,
                          body="in flight")
        session.add(sending)
        session.flush()
        sending_id = sending.id
    assert _edit(engine, front, sara, phone=NEW_PHONE).readdressed == 0
    assert _row(engine, Message, sending_id).recipient == OLD_PHONE


def test_a_new_language_renders_waiting_template_messages_again(engine, make_runtime, fake_twilio, clinic) -> None:
    tenant, front, sara = clinic
    runtime, queue = make_runtime(fake_twilio)
    call(engine, tenant, templates.create_template, code="see-you", name="See you", channel="sms",
         body_en="Hello {{ patient_name }}, see you soon. {{ clinic_name }}",
         body_ar="مرحبا {{ patient_name }}، نراكم قريبا. {{ clinic_name }}")
    neighbour = neighbour_id(engine)
    call(engine, neighbour, templates.create_template, code="see-you", name="See you", channel="sms",
         body_en="Neighbour: hello {{ patient_name }}", body_ar="الجار: مرحبا {{ patient_name }}")
    at = utcnow() + dt.timedelta(hours=2)
    templated = call(engine, front, messaging.schedule, "sms", at, patient_id=sara, template_code="see-you",
                     queue=queue).message_id
    own_text = call(engine, front, messaging.schedule, "sms", at, patient_id=sara, text="Bring your card",
                    queue=queue).message_id
    theirs = call(engine, neighbour, messaging.schedule, "sms", at, patient_id=_neighbour_sara(engine).id,
                  template_code="see-you", queue=queue).message_id

    change = _edit(engine, front, sara, language=Language.AR)

    assert change.changed == ("language",) and change.relanguaged == 1
    message = _row(engine, Message, templated)
    assert message.language == Language.AR and message.body.startswith("مرحبا سارة علي")
    assert _row(engine, Message, own_text).body == "Bring your card"  # no Arabic text to render
    assert _row(engine, Message, theirs).body == "Neighbour: hello Sara Ali"
    runtime.clock = lambda: at + dt.timedelta(seconds=1)
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    bodies = {r.params["Body"] for r in fake_twilio.sends}
    assert any(b.startswith("مرحبا سارة علي") for b in bodies) and "Bring your card" in bodies
    assert not any(b.startswith("Hello Sara") for b in bodies)


def test_a_correction_between_the_workers_read_and_its_claim_is_what_is_sent(engine, make_runtime, fake_twilio,
                                                                            clinic, monkeypatch) -> None:
    """The worker read the message, then staff corrected the number, then the worker claimed it: the
    claim reads the row again, so the new number gets it and the old one nothing."""
    from app.delivery import sender

    _tenant, front, sara = clinic
    runtime, queue = make_runtime(fake_twilio)
    queued = call(engine, front, messaging.send, "sms", patient_id=sara, text="See you at 10", queue=queue)
    real_load = sender.load
    corrected = []

    def load_then_correct(*args, **kwargs):  # type: ignore[no-untyped-def]
        loaded = real_load(*args, **kwargs)
        if not corrected:
            corrected.append(_edit(engine, front, sara, phone=NEW_PHONE))
        return loaded

    monkeypatch.setattr(sender, "load", load_then_correct)
    queue.drain(runtime)
    assert corrected and corrected[0].readdressed == 1
    assert fake_twilio.count_by_to() == {NEW_PHONE: 1}
    assert _row(engine, Message, queued.message_id).recipient == NEW_PHONE
