"""The fake SMTP server behaves like an SMTP server through smtplib, over real TCP on loopback."""

from __future__ import annotations

import email.policy
import smtplib
from email.message import EmailMessage

import pytest

from tests.peers.fake_smtp import FakeSMTP, SmtpReply

SENDER = "reminders@clinic.example"
PATIENT = "patient@example.org"


def _message(to: str = PATIENT, subject: str = "Appointment reminder") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Clinic <{SENDER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<reminder-1@clinic.example>"
    msg.set_content("Your appointment is tomorrow at 10:00.")
    msg.add_alternative("<p>Your appointment is tomorrow at <b>10:00</b>.</p>", subtype="html")
    return msg


def _client(smtp: FakeSMTP, timeout: float = 5.0) -> smtplib.SMTP:
    return smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)


def test_message_is_recorded_with_envelope_and_headers(fake_smtp: FakeSMTP) -> None:
    with _client(fake_smtp) as client:
        refused = client.send_message(_message(subject="تذكير بالموعد"))
    assert refused == {}
    (mail,) = fake_smtp.messages
    assert (mail.mail_from, mail.rcpt_tos) == (SENDER, [PATIENT])
    assert mail.subject == "تذكير بالموعد"
    assert mail.message["Message-ID"] == "<reminder-1@clinic.example>"
    assert mail.message["To"] == PATIENT
    assert mail.text_body() == "Your appointment is tomorrow at 10:00.\n"
    assert mail.message.get_body(preferencelist=("html",)) is not None
    assert mail.reply.kind == "accept" and mail.login is None


def test_rcpt_550_refuses_all_recipients(fake_smtp: FakeSMTP) -> None:
    fake_smtp.set_rcpt_reply(PATIENT, SmtpReply.reject(550, "5.1.1 Mailbox unavailable"))
    with _client(fake_smtp) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        client.send_message(_message())
    assert info.value.recipients == {PATIENT: (550, b"5.1.1 Mailbox unavailable")}
    assert fake_smtp.messages == []


def test_one_refused_recipient_of_two_is_reported_and_the_other_gets_it(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_rcpt(SmtpReply.reject(), SmtpReply.accept())
    with _client(fake_smtp) as client:
        refused = client.sendmail(SENDER, ["gone@example.org", PATIENT], _message().as_bytes(policy=email.policy.SMTP))
    assert refused == {"gone@example.org": (550, b"5.1.1 Mailbox unavailable")}
    (mail,) = fake_smtp.messages
    assert mail.rcpt_tos == [PATIENT]


def test_data_550_raises_smtp_data_error(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_data(SmtpReply.reject(554, "5.7.1 Message rejected as spam"))
    with _client(fake_smtp) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.send_message(_message())
    assert info.value.smtp_code == 554
    assert fake_smtp.messages == []
    assert len(fake_smtp.rejected) == 1


def test_data_451_is_a_temporary_error(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_data(SmtpReply.temporary())
    with _client(fake_smtp) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.send_message(_message())
    assert 400 <= info.value.smtp_code < 500
    with _client(fake_smtp) as client:  # next attempt succeeds
        client.send_message(_message())
    assert len(fake_smtp.messages) == 1


def test_rcpt_451_is_a_temporary_refusal(fake_smtp: FakeSMTP) -> None:
    fake_smtp.rcpt_responder = lambda address: SmtpReply.temporary(451, "4.2.1 Try later")
    with _client(fake_smtp) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        client.send_message(_message())
    assert info.value.recipients[PATIENT][0] == 451


def test_accept_then_drop_is_ambiguous(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_data(SmtpReply.accept_then_drop())
    client = _client(fake_smtp)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.send_message(_message())
    (mail,) = fake_smtp.messages  # the server has it although the client saw no 250
    assert mail.reply.kind == "accept_then_drop"


def test_drop_at_rcpt_disconnects(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_rcpt(SmtpReply.drop())
    client = _client(fake_smtp)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.send_message(_message())
    assert fake_smtp.messages == []


def test_slow_reply_trips_the_client_timeout(fake_smtp: FakeSMTP) -> None:
    fake_smtp.script_data(SmtpReply.accept(delay_ms=1500))
    client = _client(fake_smtp, timeout=0.3)
    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        client.send_message(_message())
    assert len(fake_smtp.wait_for_messages(1, timeout=3)) == 1


def test_auth_required_and_checked() -> None:
    with FakeSMTP(auth={"mailer": "s3cret"}, auth_required=True) as smtp:
        with _client(smtp) as client, pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(_message())
        assert refused.value.smtp_code == 530
        with _client(smtp) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("mailer", "wrong")
        with _client(smtp) as client:
            client.login("mailer", "s3cret")
            client.send_message(_message())
        (mail,) = smtp.messages
        assert mail.login == "mailer"
        attempts = smtp.auth_attempts  # smtplib tries PLAIN, then LOGIN, before giving up
        assert attempts[-1] == ("mailer", True)
        assert all(user == "mailer" and not ok for user, ok in attempts[:-1])


def test_bare_lf_data_is_refused_whatever_the_size(fake_smtp: FakeSMTP) -> None:
    raw = _message().as_bytes()  # the default policy joins lines with "\n"; smtplib sends bytes as is
    assert b"\r\n" not in raw
    with _client(fake_smtp) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail(SENDER, [PATIENT], raw)
        assert info.value.smtp_code == 550
        client.sendmail(SENDER, [PATIENT], _message().as_bytes(policy=email.policy.SMTP))  # CRLF: fine
    assert len(fake_smtp.rejected) == 1 and len(fake_smtp.messages) == 1


def test_bare_lf_can_be_tolerated() -> None:
    with FakeSMTP(reject_bare_lf=False) as smtp, _client(smtp) as client:
        client.sendmail(SENDER, [PATIENT], _message().as_bytes())
        assert smtp.messages[0].subject == "Appointment reminder"
