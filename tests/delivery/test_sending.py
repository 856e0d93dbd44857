"""Sending through the real Twilio SDK and smtplib to loopback peers: once, honestly, forward only."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import pytest
from sqlalchemy import Engine, select

from app.delivery import sender, sweeper
from app.errors import ValidationError
from app.services import messaging
from app.services.messaging import MessagingService
from db.enums import Language, MessageStatus, OptOutSource, Role
from db.models import Message, MessageLog, NotificationPreference, Patient, PreferenceChange
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.factories import call, make_patient, make_tenant, make_user
from tests.peers.fake_twilio import Outcome

pytestmark = pytest.mark.usefixtures("fake_twilio")


def _message(engine: Engine, message_id) -> Message:
    with system_session(engine) as session:
        message = session.get(Message, uuid.UUID(str(message_id)))
        assert message is not None
        session.expunge(message)
        return message


def _events(engine: Engine, message_id) -> list[str]:
    with system_session(engine) as session:
        return list(session.scalars(select(MessageLog.event).where(MessageLog.message_id == uuid.UUID(str(message_id)))
                                    .order_by(MessageLog.created_at)))


def _bulk(runtime, tenant, recipients, **kwargs):
    return MessagingService(runtime).send_bulk_messages(
        recipients=recipients, message=kwargs.pop("message", "Your appointment is tomorrow"), channel="SMS",
        tenant_id=tenant, **kwargs)


def test_the_documented_bulk_call_sends_each_valid_number_once(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    result = MessagingService(runtime).send_bulk_messages(
        recipients=["+966501234567", "+966507654321", "0501234567", "not a number", "+966 50 765 4321"],
        message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant,
    )
    assert result.accepted == 2
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, "duplicate of row 1"), (4, "invalid: the number contains letters"), (5, "duplicate of row 2")]
    queue.drain(runtime)
    assert fake_twilio.count_by_to() == {"+966501234567": 1, "+966507654321": 1}
    with system_session(engine) as session:
        messages = session.scalars(select(Message).where(Message.bulk_job_id == result.bulk_job_id)).all()
        assert {m.status for m in messages} == {MessageStatus.SENT}
        assert all(m.provider_message_id and m.provider_message_id.startswith("SM") for m in messages)
        assert all(_events(engine, m.id) == ["sending", "accepted"] for m in messages)
        callback = fake_twilio.sends[0].params.get("StatusCallback")
        assert callback and callback.startswith("https://clinic.example/twilio/status?mid=")


def test_rows_are_committed_before_anything_is_enqueued(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    seen: list[int] = []

    def check(batch: list[str]) -> None:
        with system_session(engine) as session:
            seen.append(len(session.scalars(select(Message.id).where(Message.id.in_(
                [uuid.UUID(i) for i in batch]))).all()))

    queue.on_enqueue = check
    _bulk(runtime, tenant, ["+966501234567", "+966507654321"])
    assert seen == [2]


def test_a_job_run_twice_or_by_two_workers_sends_once(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    numbers = [f"+9665012345{i:02d}" for i in range(10, 40)]
    _bulk(runtime, tenant, numbers)
    _job_id, batch = queue.deliveries.pop()
    threads = [threading.Thread(target=sender.deliver_batch, args=(runtime, batch)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sender.deliver_batch(runtime, batch)
    assert fake_twilio.count_by_to() == dict.fromkeys(numbers, 1)


def test_invalid_number_fails_at_once_with_an_explanation(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(21211, "The 'To' number is not a valid phone number.", http_status=400))
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    [message] = _messages_of(engine, result.bulk_job_id)
    assert message.status == MessageStatus.FAILED and message.error_code == "21211"
    assert "not a valid mobile number" in message.status_reason
    sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(hours=1))
    queue.drain(runtime)
    assert len(fake_twilio.sends) == 1


def test_stop_reply_error_records_the_opt_out(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone="+966501234567")
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(21610, "Attempt to send to unsubscribed recipient", http_status=400))
    _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    with tenant_session(engine, tenant) as session:
        pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient))
        assert pref is not None and pref.sms_opt_in is False and pref.opt_out_source == OptOutSource.PROVIDER
        assert session.scalar(select(PreferenceChange.field)) == "sms_opt_in"
    _bulk(runtime, tenant, ["+966501234567"], message="Second message")
    queue.drain(runtime)
    assert len(fake_twilio.sends) == 1  # the next one is suppressed locally


def test_not_processed_is_retried_with_backoff_and_sent_once(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(20429, "Too Many Requests", http_status=429))
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    [message] = _messages_of(engine, result.bulk_job_id)
    assert message.status == MessageStatus.QUEUED and message.next_attempt_at is not None
    assert sweeper.run_sweep(runtime).enqueued == 0  # not due yet
    runtime.clock = lambda: message.next_attempt_at + dt.timedelta(seconds=1)
    report = sweeper.run_sweep(runtime)
    assert report.enqueued == 1
    queue.drain(runtime)
    assert _message(engine, message.id).status == MessageStatus.SENT
    assert len(fake_twilio.sends) == 2
    assert _events(engine, message.id).count("retry_scheduled") == 1


def test_gives_up_after_the_attempt_limit(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio, max_send_attempts=2)
    fake_twilio.set_default(Outcome.error(20429, "Too Many Requests", http_status=429))
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    later = utcnow() + dt.timedelta(hours=1)
    runtime.clock = lambda: later
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    [message] = _messages_of(engine, result.bulk_job_id)
    assert message.status == MessageStatus.FAILED and "Gave up after 2 attempts" in message.status_reason


@pytest.mark.parametrize("outcome", [Outcome.accept_then_error(20500, http_status=500), Outcome.accept_then_hang(5)],
                         ids=["500-after-create", "timeout-after-create"])
def test_ambiguous_outcome_is_settled_by_lookup_never_resent(engine, make_runtime, fake_twilio, outcome) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio, provider_timeout_seconds=1.0)
    fake_twilio.script(outcome)
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    [message] = _messages_of(engine, result.bulk_job_id)
    assert message.status == MessageStatus.UNKNOWN
    sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(seconds=30))
    settled = _message(engine, message.id)
    assert settled.status == MessageStatus.SENT
    assert settled.provider_message_id == fake_twilio.messages[0]["sid"]
    assert len(fake_twilio.sends) == 1
    assert "lookup" in _events(engine, message.id)


def test_unknown_that_the_provider_never_got_is_resent_after_the_grace_period(engine, make_runtime,
                                                                              fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(20500, "Internal error", http_status=500))
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    [message] = _messages_of(engine, result.bulk_job_id)
    assert message.status == MessageStatus.UNKNOWN
    sweeper.run_sweep(runtime, now=utcnow() + dt.timedelta(seconds=30))
    assert _message(engine, message.id).status == MessageStatus.UNKNOWN  # still within the grace period
    later = utcnow() + dt.timedelta(seconds=runtime.settings.unknown_resend_after_seconds + 60)
    runtime.clock = lambda: later
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert _message(engine, message.id).status == MessageStatus.SENT
    assert len(fake_twilio.sends) == 2


def test_opted_out_and_quiet_hours_never_reach_the_provider(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    opted_out = make_patient(engine, tenant, phone="+966501111111", name_en="Opted Out")
    quiet = make_patient(engine, tenant, phone="+966502222222", name_en="Quiet")
    with tenant_session(engine, tenant) as session:
        session.add(NotificationPreference(patient_id=opted_out, sms_opt_in=False,
                                           opted_out_at=utcnow(), opt_out_source=OptOutSource.STAFF))
        session.add(NotificationPreference(patient_id=quiet, quiet_hours_start=dt.time(0, 0),
                                           quiet_hours_end=dt.time(23, 59, 59)))
    runtime, queue = make_runtime(fake_twilio)
    result = _bulk(runtime, tenant, ["+966501111111", "+966502222222"])
    queue.drain(runtime)
    assert fake_twilio.sends == []
    by_recipient = {m.recipient: m for m in _messages_of(engine, result.bulk_job_id)}
    assert by_recipient["+966501111111"].status == MessageStatus.SUPPRESSED
    assert "opted out of SMS" in by_recipient["+966501111111"].status_reason
    deferred = by_recipient["+966502222222"]
    assert deferred.status == MessageStatus.SCHEDULED and "Quiet hours" in deferred.status_reason
    assert deferred.scheduled_at is not None and deferred.scheduled_at > utcnow()
    # Urgent is for one message (the bulk path, like the wizard, keeps quiet hours).
    urgent = call(engine, tenant, messaging.send, "sms", recipient="+966502222222", text="Urgent: clinic closed",
                  urgent=True, queue=queue)
    queue.drain(runtime)
    assert _message(engine, urgent.message_id).status == MessageStatus.SENT


def test_pause_holds_everything_and_resume_sends_it(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "boss")
    runtime, queue = make_runtime(fake_twilio)
    call(engine, admin, messaging.pause_sending, reason="wrong text", queue=queue)
    result = _bulk(runtime, tenant, ["+966501234567", "+966507654321"])
    queue.drain(runtime)
    later = utcnow() + dt.timedelta(hours=1)
    runtime.clock = lambda: later
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert fake_twilio.sends == []
    assert {m.status for m in _messages_of(engine, result.bulk_job_id)} == {MessageStatus.QUEUED}
    assert call(engine, admin, messaging.resume_sending, queue=queue) == 2
    queue.drain(runtime)
    assert len(fake_twilio.sends) == 2


def test_scheduled_message_waits_then_goes_and_can_be_cancelled(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    at = utcnow() + dt.timedelta(hours=2)
    first = call(engine, tenant, messaging.schedule, "sms", at, recipient="+966501234567", text="See you at 10",
                 queue=queue)
    second = call(engine, tenant, messaging.schedule, "sms", at, recipient="+966507654321", text="See you at 11",
                  queue=queue)
    assert first.status == MessageStatus.SCHEDULED and queue.deliveries == []
    assert call(engine, tenant, messaging.cancel, message_ids=[second.message_id], queue=queue) == 1
    runtime.clock = lambda: at + dt.timedelta(seconds=1)
    sweeper.run_sweep(runtime)
    queue.drain(runtime)
    assert fake_twilio.count_by_to() == {"+966501234567": 1}
    assert _message(engine, second.message_id).status == MessageStatus.CANCELLED


def test_scheduled_time_in_the_past_is_refused(engine, make_runtime) -> None:
    tenant = make_tenant(engine)
    _runtime, queue = make_runtime()
    with pytest.raises(ValidationError, match="in the past"):
        call(engine, tenant, messaging.schedule, "sms", utcnow() - dt.timedelta(minutes=1),
                                                 recipient="+966501234567", text="x", queue=queue)


def test_whatsapp_uses_whatsapp_addresses(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    call(engine, tenant, messaging.send, "WhatsApp", recipient="+966501234567", text="Hello", queue=queue)
    queue.drain(runtime)
    [request] = fake_twilio.sends
    assert request.params["To"] == "whatsapp:+966501234567"
    assert request.params["From"] == "whatsapp:+14155238886"


def test_patient_language_and_name_are_used(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    make_patient(engine, tenant, phone="+966501234567", name_en="Sara Ali", name_ar="سارة علي",
                 language=Language.AR)
    runtime, _queue = make_runtime(fake_twilio)
    result = _bulk(runtime, tenant, ["+966501234567", "+966507654321"],
                   message="Hello {patient_name}", message_ar="مرحبا {patient_name}")
    bodies = {m.recipient: (m.language, m.body) for m in _messages_of(engine, result.bulk_job_id)}
    assert bodies == {"+966501234567": (Language.AR, "مرحبا سارة علي")}
    assert [(r.row, r.reason) for r in result.rejected] == [
        (2, "missing variable: no value for patient_name")]
    with pytest.raises(ValidationError, match="No recipient can be sent to: row 1: missing variable"):
        _bulk(runtime, tenant, ["+966507654321"], message="Hello {patient_name}")
    with pytest.raises(ValidationError, match="syntax error"):
        _bulk(runtime, tenant, ["+966501234567"], message="Hello {{ patient_name }")


def test_retry_makes_one_linked_attempt_even_when_clicked_twice(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    desk = make_user(engine, tenant, "desk", role=Role.FRONT_DESK)
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(21614, "not a mobile number", http_status=400))
    result = _bulk(runtime, tenant, ["+966501234567"])
    queue.drain(runtime)
    [failed] = _messages_of(engine, result.bulk_job_id)
    first = call(engine, desk, messaging.retry, [failed.id], queue=queue)
    second = call(engine, desk, messaging.retry, [failed.id], queue=queue)
    assert first[0].message_id == second[0].message_id
    queue.drain(runtime)
    retried = _message(engine, first[0].message_id)
    assert retried.retry_of_id == failed.id and retried.status == MessageStatus.SENT
    assert len(fake_twilio.sends) == 2
    with pytest.raises(ValidationError, match="Only failed"):
        call(engine, desk, messaging.retry, [retried.id], queue=queue)


def test_email_goes_over_smtp_with_text_html_rtl_and_unsubscribe(engine, make_runtime, fake_smtp) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(smtp=fake_smtp)
    sent = call(engine, tenant, messaging.send, "email", recipient="Patient@Example.com", text="Hello",
                                text_ar="مرحبا بكم", subject="Reminder", language="ar", queue=queue)
    queue.drain(runtime)
    assert _message(engine, sent.message_id).status == MessageStatus.SENT, _events(engine, sent.message_id)
    [mail] = fake_smtp.messages
    assert mail.rcpt_tos == ["patient@example.com"]
    message = mail.message
    html = message.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html and "مرحبا بكم" in html
    assert message.get_body(("plain",)).get_content().strip() == "مرحبا بكم"
    assert message["List-Unsubscribe"]


@pytest.mark.parametrize("code,status", [(550, MessageStatus.FAILED), (451, MessageStatus.QUEUED)])
def test_smtp_refusals(engine, make_runtime, fake_smtp, code, status) -> None:
    from tests.peers.fake_smtp import SmtpReply

    tenant = make_tenant(engine)
    runtime, queue = make_runtime(smtp=fake_smtp)
    fake_smtp.script_rcpt(SmtpReply.reject(550) if code == 550 else SmtpReply.temporary(451))
    sent = call(engine, tenant, messaging.send, "email", recipient="a@example.com", text="Hi", queue=queue)
    queue.drain(runtime)
    assert _message(engine, sent.message_id).status == status
    assert fake_smtp.messages == []


def _messages_of(engine: Engine, bulk_job_id) -> list[Message]:
    with system_session(engine) as session:
        rows = session.scalars(select(Message).where(Message.bulk_job_id == bulk_job_id)
                               .order_by(Message.recipient)).all()
        session.expunge_all()
        return list(rows)


def test_tenant_cannot_retry_or_cancel_another_tenants_message(engine, make_runtime, fake_twilio) -> None:
    a, b = make_tenant(engine, "a-clinic"), make_tenant(engine, "b-clinic")
    runtime, queue = make_runtime(fake_twilio)
    fake_twilio.script(Outcome.error(21211, "bad", http_status=400))
    result = _bulk(runtime, a, ["+966501234567"])
    queue.drain(runtime)
    [failed] = _messages_of(engine, result.bulk_job_id)
    from app.errors import NotFoundError

    with pytest.raises(NotFoundError):
        call(engine, b, messaging.retry, [failed.id], queue=queue)
    assert call(engine, b, messaging.cancel, message_ids=[failed.id], queue=queue) == 0
    with tenant_session(engine, b) as session:
        assert session.scalar(select(Patient).limit(1)) is None


def test_jobs_lost_from_the_queue_are_enqueued_again_by_the_sweeper(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    numbers = [f"+9665012345{i:02d}" for i in range(10, 20)]
    result = _bulk(runtime, tenant, numbers)
    queue.lose_everything()
    assert sweeper.run_sweep(runtime).enqueued == 0  # enqueued moments ago: not suspect yet
    runtime.clock = lambda: utcnow() + dt.timedelta(seconds=runtime.settings.sweep_queued_after_seconds + 1)
    assert sweeper.run_sweep(runtime).enqueued == len(numbers)
    queue.drain(runtime)
    assert fake_twilio.count_by_to() == dict.fromkeys(numbers, 1)
    assert {m.status for m in _messages_of(engine, result.bulk_job_id)} == {MessageStatus.SENT}


def test_waiting_jobs_are_not_enqueued_twice(engine, make_runtime, fake_twilio) -> None:
    tenant = make_tenant(engine)
    runtime, queue = make_runtime(fake_twilio)
    _bulk(runtime, tenant, ["+966501234567"])
    runtime.clock = lambda: utcnow() + dt.timedelta(hours=1)
    assert sweeper.run_sweep(runtime).enqueued == 0
    assert len(queue.deliveries) == 1


def test_whatsapp_template_with_a_content_sid_sends_the_approved_template(engine, make_runtime, fake_twilio) -> None:
    from db.enums import Channel
    from db.models import MessageTemplate, MessageTemplateVersion

    tenant = make_tenant(engine)
    with tenant_session(engine, tenant) as session:
        template = MessageTemplate(code="reminder_wa", name="Reminder", channel=Channel.WHATSAPP,
                                   whatsapp_content_sid="HX" + "a" * 32,
                                   whatsapp_variable_map={"1": "patient_name", "2": "appointment_time"})
        session.add(template)
        session.flush()
        session.add(MessageTemplateVersion(template_id=template.id, version=1,
                                           body_en="Hi {{ patient_name }}, see you at {{ appointment_time }}"))
    runtime, queue = make_runtime(fake_twilio)
    call(engine, tenant, messaging.send, "whatsapp", recipient="+966501234567", template_code="reminder_wa",
        variables={"patient_name": "Sara", "appointment_time": "10:30"}, queue=queue)
    queue.drain(runtime)
    [request] = fake_twilio.sends
    assert request.params["ContentSid"] == "HX" + "a" * 32
    assert json.loads(request.params["ContentVariables"]) == {"1": "Sara", "2": "10:30"}
    assert "Body" not in request.params
