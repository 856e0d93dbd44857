"""What a patient's reply asks for: English and Arabic, digits, dialect and spelling, buttons, and
everything that must not be guessed (app/services/replies/intents.py)."""

from __future__ import annotations

import pytest

from app.delivery import inbound
from app.reply_lint import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS
from app.services.replies.intents import BUTTON_PAYLOADS, START_WORDS, STOP_WORDS, classify, keyword, normalise
from db.enums import ReplyIntent

C, X, R = ReplyIntent.CONFIRM, ReplyIntent.CANCEL, ReplyIntent.RESCHEDULE
STOP, START, U = ReplyIntent.STOP, ReplyIntent.START, ReplyIntent.UNCLEAR

# (body, button payload, intent when an appointment awaits an answer)
CASES: list[tuple[str, str, ReplyIntent]] = [
    # -- confirm, English
    ("yes", "", C), ("Yes.", "", C), ("YES!!!", "", C), ("yesss", "", C), ("yess", "", C), ("Y", "", C),
    ("yeah", "", C), ("yep", "", C), ("ok", "", C), ("OK 👍", "", C), ("okay", "", C), ("Confirm", "", C),
    ("confirmed ✅", "", C), ("I confirm", "", C), ("sure", "", C), ("Yes, I will come", "", C),
    ("I'll be there, thanks", "", C), ("I’ll come", "", C), ("See you then", "", C), ("1", "", C),
    ("1.", "", C), ("1️⃣", "", C), ("yes please", "", C), ("Hi, I confirm my appointment", "", C),
    # -- confirm, Arabic (spelling and dialect)
    ("نعم", "", C), ("نعععم", "", C), ("نَعَم", "", C), ("ايوه", "", C), ("أيوة", "", C), ("ايوا", "", C),
    ("إي", "", C), ("اي والله", "", C), ("ايه", "", C), ("أكيد", "", C), ("تمام", "", C),
    ("تمــــام", "", C), ("موافق", "", C), ("مؤكد", "", C), ("أؤكد الموعد", "", C), ("تأكيد", "", C),
    ("حاضر", "", C), ("بجي إن شاء الله", "", C), ("جاي", "", C), ("راح أجي", "", C), ("سأحضر", "", C),
    ("١", "", C), ("۱", "", C), ("نعم شكراً", "", C), ("اوكي", "", C),
    # -- cancel, English
    ("cancel", "", X), ("Cancel please", "", X), ("please cancel my appointment", "", X), ("no", "", X),
    ("No.", "", X), ("nooo", "", X), ("I can't come", "", X), ("cannot come", "", X),
    ("I won't make it", "", X), ("not coming", "", X), ("I'm not coming, sorry", "", X), ("2", "", X),
    ("no thanks", "", X), ("I want to cancel", "", X),
    # -- cancel, Arabic
    ("لا", "", X), ("لأ", "", X), ("إلغاء", "", X), ("الغاء الموعد", "", X), ("ألغي", "", X), ("كنسل", "", X),
    ("ابي الغي الموعد", "", X), ("ما اقدر اجي", "", X), ("ما راح اجي", "", X), ("مو جاي", "", X),
    ("لن أحضر", "", X), ("آسف ما اقدر احضر", "", X), ("٢", "", X), ("۲", "", X), ("لا شكرا", "", X),
    # -- reschedule
    ("reschedule", "", R), ("Can I reschedule", "", R), ("another day please", "", R), ("change the time", "", R),
    ("postpone", "", R), ("3", "", R), ("٣", "", R), ("تأجيل", "", R), ("أجّل", "", R), ("أجّل الموعد", "", R),
    ("غير الموعد", "", R), ("تغيير الموعد", "", R), ("موعد ثاني", "", R), ("موعد آخر لو سمحت", "", R),
    ("ابي اغير الموعد", "", R),
    # -- opt-out and opt-in keywords (whole messages, as carriers read them)
    ("STOP", "", STOP), ("stop.", "", STOP), ("Unsubscribe", "", STOP), ("توقف", "", STOP), ("إيقاف", "", STOP),
    ("الغاء الاشتراك", "", STOP), ("START", "", START), ("unstop", "", START), ("ابدأ", "", START),
    # -- never guessed
    ("", "", U), ("👍", "", U), ("thanks", "", U), ("شكرا", "", U), ("ان شاء الله", "", U),
    ("إن شاء الله", "", U), ("اجل", "", U), ("not sure", "", U), ("yes but can I change the time", "", U),
    ("yes no", "", U), ("sorry", "", U), ("1 2", "", U), ("12", "", U), ("yes?", "", U), ("cancel?", "", U),
    ("نعم؟", "", U),
    ("can I cancel?", "", U), ("no problem", "", U), ("don't cancel", "", U), ("لا تلغي", "", U),
    ("لا بأس", "", U), ("نعم بس ابي اغير الوقت", "", U), ("what time is it", "", U), ("اي موعد", "", U),
    ("please stop calling me at work", "", U), ("10:30", "", U), ("maybe", "", U), ("ممكن", "", U),
    # -- buttons: the payload decides, not the label; an unknown payload falls back to the text
    ("Confirm", "CONFIRM", C), ("تأكيد", "confirm", C), ("Cancel", "CANCEL", X), ("إلغاء", "cancel", X),
    ("Change time", "RESCHEDULE", R), ("Yes", "CANCEL", X), ("anything", " Reschedule ", R),
    ("Yes", "SOMETHING_ELSE", C), ("Hmm", "OTHER", U), ("STOP", "CONFIRM", C),
]


@pytest.mark.parametrize(("body", "payload", "expected"), CASES)
def test_a_reply_is_read_as_the_table_says(body: str, payload: str, expected: ReplyIntent) -> None:
    assert classify(body, payload) == expected


def test_the_table_is_large_and_covers_every_intent() -> None:
    assert len(CASES) >= 80
    assert {expected for _, _, expected in CASES} == set(ReplyIntent)


@pytest.mark.parametrize(("body", "awaiting", "no_appointment"), [
    ("cancel", X, STOP), ("CANCEL", X, STOP), ("الغاء", X, STOP), ("إلغاء", X, STOP),
    ("yes", C, START), ("YES", C, START),
])
def test_cancel_and_yes_answer_an_appointment_only_when_one_awaits(body: str, awaiting: ReplyIntent,
                                                                  no_appointment: ReplyIntent) -> None:
    assert classify(body, awaiting_answer=True) == awaiting
    assert classify(body, awaiting_answer=False) == no_appointment


@pytest.mark.parametrize("body", ["نعم", "تمام", "1", "no", "لا", "reschedule", "hmm", "stop", "توقف"])
def test_other_words_mean_the_same_with_or_without_an_appointment(body: str) -> None:
    assert classify(body, awaiting_answer=True) == classify(body, awaiting_answer=False)


def test_a_button_is_never_an_opt_out() -> None:
    assert classify("Cancel", "CANCEL", awaiting_answer=False) == X
    assert classify("Yes", "CONFIRM", awaiting_answer=False) == C


def test_an_opt_out_asked_as_a_question_still_opts_out_when_no_appointment_awaits() -> None:
    """As before replies were understood: over-honouring an opt-out is the safe side."""
    assert classify("STOP?", awaiting_answer=False) == STOP
    assert classify("cancel?", awaiting_answer=False) == STOP
    assert classify("cancel?", awaiting_answer=True) == U  # asks about the appointment: a person answers


@pytest.mark.parametrize(("raw", "normal"), [
    ("أَهلاً", "اهلا"), ("إلى", "الي"), ("مدرسة", "مدرسه"), ("مؤكد", "موكد"), ("تمــــام", "تمام"),
    ("٠١٢٣٤٥٦٧٨٩", "0123456789"), ("۰۱۲۳۴۵۶۷۸۹", "0123456789"), ("Can't STOP!!", "cant stop"),
    ("نعععععم 😀", "نعم"), ("ＹＥＳ", "yes"), ("  a\u200fb  ", "a b"),
])
def test_normalise(raw: str, normal: str) -> None:
    assert normalise(raw) == normal


def test_opt_out_words_are_one_table() -> None:
    """The carriers' keywords come from app.reply_lint (what the lint warns about); Arabic ones are added;
    app.delivery.inbound keeps no list of its own."""
    assert {w.lower() for w in OPT_OUT_KEYWORDS} <= STOP_WORDS
    assert {w.lower() for w in OPT_IN_KEYWORDS} <= START_WORDS
    assert not STOP_WORDS & START_WORDS
    assert not any(name.endswith("_WORDS") for name in vars(inbound))
    assert keyword("Stop") == STOP and keyword("stop please") is None and keyword("ابدأ") == START


def test_the_documented_button_payloads() -> None:
    assert BUTTON_PAYLOADS == {"CONFIRM": C, "CANCEL": X, "RESCHEDULE": R}


def test_hostile_input_is_unclear_and_quick() -> None:
    for body in ("\x00" * 10_000, "ي" * 100_000, "yes " * 20_000 + "no", "\u202eyes", "<script>yes</script>"):
        assert classify(body) in (U, C)
    assert classify("yes " * 20_000 + "no") == U
    assert classify("<script>yes</script>") == U
