"""Reply-wording lint: SMS asking for replies (Saudi SMS is one-way) and carrier opt-out/opt-in keywords."""

from __future__ import annotations

import pytest

from app.reply_lint import ONE_WAY_SMS, OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, reply_warnings
from app.services import templates
from db.enums import Channel, Language


def one_way(body: str, channel: Channel = Channel.SMS, language: Language | None = None) -> bool:
    return ONE_WAY_SMS in reply_warnings(body, channel, language=language)


def keywords(body: str, channel: Channel = Channel.SMS, language: Language | None = None) -> list[str]:
    """The keywords named by the keyword warnings, in order."""
    found = []
    for warning in reply_warnings(body, channel, language=language):
        if warning == ONE_WAY_SMS:
            continue
        found.append(next(k for k in (*OPT_OUT_KEYWORDS, *OPT_IN_KEYWORDS)
                          if warning.startswith((f"Replying {k} ", f"{k} is an opt-in"))))
    return found


# -- SMS that asks for a reply ------------------------------------------------------------------

ASKS_FOR_A_REPLY_EN = [
    "Reply 1 to confirm",
    "Hi {patient_name}, your appointment is on {{ appointment_date }}. Reply 1 to confirm or 2 to reschedule.",
    "Please reply to this message to confirm.",
    "Confirm by replying 1.",
    "Text back 1 to confirm",
    "Text 1 to confirm",
    "Please respond with 1 or 2.",
    "Respond by sending OK.",
    "Please respond.",
    "Please log in and reply 1 to confirm.",
    "Don't forget to reply 1 to confirm.",
    "Send us a message to confirm.",
    "Send 2 to reschedule.",
    "Answer 1 for yes.",
    "Hi {{ patient_name }}, reply {{ choice }} to confirm",
    "REPLY 1 TO CONFIRM",
]
ASKS_FOR_A_REPLY_AR = [
    "للتأكيد أرسل 1",
    "للتأكيد أرسِل ١",
    "رد بـ نعم للتأكيد",
    "ردّ بنعم",
    "رد 1 للتأكيد أو 2 للإلغاء",
    "يرجى الرد على هذه الرسالة",
    "يرجى الرد برقم 1 للتأكيد",
    "مرحبا {patient_name}، موعدك يوم {{ appointment_date }}. للتأكيد ارسل نعم",
    "أرسل لنا رسالة للتأكيد",
    "فضلاً أرسلي \"1\" للتأكيد",
    "للتأكيد يرجى الرد بالرقم 1",
]
NO_REPLY_ASKED = [
    "Hi {patient_name}, your appointment is on {{ appointment_date }} at {{ appointment_time }}.",
    "We will cancel your appointment if you are more than 15 minutes late.",
    "Your appointment ends at 5.",
    "Please don't stop your medication before the visit.",
    "Do not reply to this message.",
    "This is an automated message, please do not reply.",
    "Sent from a no-reply number. Call {{ clinic_phone }} to change your visit.",
    "In reply to your request, your results are ready.",
    "We will send 2 reminders before your visit.",
    "We will send SMS reminders to your phone.",
    "Send us an email at info@clinic.example to change the time.",
    "Send us a WhatsApp message to confirm.",
    "No need to reply.",
    "You don't have to reply.",
    "Your results are ready. Stop by the front desk.",
    "To confirm, tap the link or call us.",
    "{# reply 1 to confirm #}Your results are ready.",
    "مرحبا {patient_name}، موعدك يوم {{ appointment_date }}",
    "تم إلغاء الموعد",
    "إلغاء الموعد ممكن قبل يوم من الزيارة",
    "يرجى عدم الرد على هذه الرسالة",
    "لا ترد على هذه الرسالة",
    "لا تقم بالرد على هذه الرسالة",
    "للرد على هذه الرسالة اتصل بنا",
    "كل فرد بالعائلة مرحب به",
    "أرسل الطبيب نتائجك إلى الملف",
    "تم إرسال رقم التحقق",
    "سوف نرسل لك تذكيرا قبل الموعد",
    "",
]


@pytest.mark.parametrize("body", ASKS_FOR_A_REPLY_EN + ASKS_FOR_A_REPLY_AR)
def test_an_sms_that_asks_for_a_reply_is_warned_about(body: str) -> None:
    assert one_way(body)
    assert reply_warnings(body, Channel.SMS)[0] == ONE_WAY_SMS


@pytest.mark.parametrize("body", NO_REPLY_ASKED)
def test_normal_sms_text_gets_no_warning(body: str) -> None:
    assert reply_warnings(body, Channel.SMS) == []


@pytest.mark.parametrize("body", ASKS_FOR_A_REPLY_EN + ASKS_FOR_A_REPLY_AR)
@pytest.mark.parametrize("channel", [Channel.WHATSAPP, Channel.EMAIL])
def test_replies_arrive_on_whatsapp_and_email(body: str, channel: Channel) -> None:
    assert reply_warnings(body, channel) == []


def test_the_one_way_warning_is_plain_and_suggests_what_works() -> None:
    assert ONE_WAY_SMS == ("SMS in Saudi Arabia is one-way: patients cannot reply to it. Ask them to confirm "
                           "by WhatsApp, a link or a call instead.")
    assert reply_warnings("Reply 1 to confirm. Or reply 2. Or text back.", "SMS") == [ONE_WAY_SMS]  # once


def test_language_narrows_the_phrasing_checked() -> None:
    assert one_way("للتأكيد أرسل 1", language=Language.AR)
    assert not one_way("للتأكيد أرسل 1", language=Language.EN)
    assert one_way("Reply 1 to confirm", language=Language.EN)
    assert one_way("للتأكيد Reply 1", language=Language.AR)  # Arabic text with English words
    assert one_way("Reply 1 to confirm", language="en") and one_way("رد بنعم", language="ar")


# -- carrier keywords ----------------------------------------------------------------------------

KEYWORD_REQUESTS = [
    ("Reply CANCEL to cancel", ["CANCEL"]),
    ("reply cancel to cancel", ["CANCEL"]),
    ("Text YES to confirm", ["YES"]),
    ("send STOP", ["STOP"]),
    ("Please reply with \"yes\" to confirm.", ["YES"]),
    ("Reply with the word END when you are done.", ["END"]),
    ("Reply 1 to confirm, 2 to reschedule or CANCEL to cancel.", ["CANCEL"]),
    ("Reply YES to confirm or CANCEL to cancel.", ["YES", "CANCEL"]),
    ("To confirm: YES. To cancel: reply 'quit'.", ["QUIT"]),
    ("Send START to receive reminders again.", ["START"]),
    ("Reply UNSUBSCRIBE to stop the survey.", ["UNSUBSCRIBE"]),
    ("Answer YES or NO", ["YES"]),
    ("Type \"END\" to finish.", ["END"]),
    ("Reply CANCEL to cancel. Reply cancel again if unsure.", ["CANCEL"]),  # each keyword once
    ("Hi {{ patient_name }}, reply CANCEL to cancel {{ appointment_date }}", ["CANCEL"]),
    ("للإلغاء أرسل STOP", ["STOP"]),
    ("رد بـ CANCEL للإلغاء", ["CANCEL"]),
    ("للتأكيد أرسل YES", ["YES"]),
]
NO_KEYWORD_REQUESTED = [
    "We will cancel your appointment if you are late.",
    "Your appointment ends at 5.",
    "Please don't stop your medication.",
    "Please reply by end of day.",
    "Reply to cancel your appointment.",
    "Yes, your results are ready. Reply 1 to book a follow-up.",
    "Fasting should start at midnight.",
    "Your visit START: 9:00, END: 10:00",
    "{% if urgent %}Stop by the front desk.{% endif %}",
    "We send the end-of-treatment report by e-mail.",
    "URGENT: PLEASE DO NOT STOP YOUR MEDICATION",
    "Reply STOP to opt out.",  # the keyword's intended use
    "Reply STOP to stop receiving reminders.",
    "إلغاء الموعد ممكن قبل يوم",
    "رد بـ 2 للإلغاء",
]


@pytest.mark.parametrize(("body", "expected"), KEYWORD_REQUESTS)
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.WHATSAPP])
def test_asking_for_a_carrier_keyword_is_warned_about(body: str, expected: list[str], channel: Channel) -> None:
    assert keywords(body, channel) == expected


@pytest.mark.parametrize("body", NO_KEYWORD_REQUESTED)
@pytest.mark.parametrize("channel", list(Channel))
def test_no_keyword_warning_for_normal_text(body: str, channel: Channel) -> None:
    assert keywords(body, channel) == []


def test_keyword_warnings_say_what_happens_and_what_to_use() -> None:
    assert reply_warnings("Reply CANCEL to cancel", Channel.WHATSAPP) == [
        "Replying CANCEL unsubscribes the patient from all your SMS (carriers treat it as an opt-out "
        "keyword). Suggest a digit (reply 2) or a WhatsApp button instead."
    ]
    (opt_in,) = reply_warnings("Text YES to confirm", Channel.WHATSAPP)
    assert opt_in.startswith("YES is an opt-in keyword that carriers handle themselves")
    assert "digit" in opt_in and "WhatsApp button" in opt_in
    assert reply_warnings("Reply CANCEL to cancel", Channel.SMS) == [
        ONE_WAY_SMS, reply_warnings("Reply CANCEL to cancel", Channel.WHATSAPP)[0]]


def test_email_replies_reach_the_clinic_but_texting_a_keyword_does_not() -> None:
    assert reply_warnings("Reply CANCEL to cancel", Channel.EMAIL) == []
    assert reply_warnings("Reply YES to confirm", "email") == []
    assert keywords("Or text CANCEL to {{ clinic_phone }} to cancel.", Channel.EMAIL) == ["CANCEL"]
    assert keywords("Send an SMS with STOP to 0501234567.", Channel.EMAIL) == ["STOP"]


def test_odd_input_never_raises() -> None:
    for body in ("{{", "{% if %}", "}}}", "رد", "Reply", "ـــ", "\u200f", "STOP"):
        for channel in Channel:
            assert isinstance(reply_warnings(body, channel), list)


# -- the live editor check --------------------------------------------------------------------------


def test_check_body_carries_the_warnings() -> None:
    check = templates.check_body("sms", "Reply CANCEL to cancel, {patient_name}", language="en")
    assert check.reply_warnings == tuple(reply_warnings("Reply CANCEL to cancel", Channel.SMS))
    assert len(check.reply_warnings) == 2
    assert check.ok  # a warning, not a refusal: the template can still be saved
    arabic = templates.check_body("sms", "للتأكيد أرسل 1", language="ar")
    assert arabic.reply_warnings == (ONE_WAY_SMS,)
    assert templates.check_body("email", "Reply CANCEL to cancel", language="en").reply_warnings == ()
    assert templates.check_body("sms", "Hi {patient_name}", language="en").reply_warnings == ()
