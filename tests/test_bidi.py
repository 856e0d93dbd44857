"""Numbers inside Arabic text keep their order (app.bidi), in previews and in sent bodies, and the
segment counter counts the marks that keep them so."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.bidi import LRM, RLM, direction_marks, keep_ltr_order, marks_note
from app.segments import count_segments
from app.services.message_content import render_body
from app.services.templates import check_body
from app.templating import render_template
from db.enums import Channel, Language

ARABIC = "موعدك في {{ appointment_date }} الساعة {{ appointment_time }}. للاستفسار: {{ clinic_phone }}"
VALUES = {"appointment_date": "2026-12-01", "appointment_time": "09:30", "clinic_phone": "+966114567890"}


def test_a_phone_a_date_and_a_time_after_arabic_words_each_get_one_left_to_right_mark() -> None:
    body = render_template(ARABIC, VALUES)

    assert body == (f"موعدك في {LRM}2026-12-01 الساعة {LRM}09:30. للاستفسار: {LRM}+966114567890")
    assert direction_marks(body) == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("اتصل على +966114567890", f"اتصل على {LRM}+966114567890"),  # the + stays in front
    ("موعدك 06/12/2026", f"موعدك {LRM}06/12/2026"),  # a date with slashes
    ("الخصم 50% حتى 31-12 و 1,500", f"الخصم 50% حتى {LRM}31-12 و {LRM}1,500"),  # mixed numbers
    ("رقم الملف 0501234567 و 7", "رقم الملف 0501234567 و 7"),  # plain digits read the same either way
    ("رمز الدخول AB-1234", "رمز الدخول AB-1234"),  # a code in Latin letters is left to right already
    ("الرابط https://clinic.sa/r/123 الآن", "الرابط https://clinic.sa/r/123 الآن"),  # a URL too
    ("+966114567890 رقم العيادة", f"{RLM}{LRM}+966114567890 رقم العيادة"),  # still a right-to-left line
    ("Room 12, floor 3", "Room 12, floor 3"),  # English: untouched, stays GSM-7
    ("Hello سارة 2026-12-01", f"Hello سارة {LRM}2026-12-01"),  # an Arabic name before a date
    ("السطر الأول\n2026-12-01 السطر الثاني", f"السطر الأول\n{RLM}{LRM}2026-12-01 السطر الثاني"),
])
def test_only_numbers_that_right_to_left_text_would_reorder_get_a_mark(text: str, expected: str) -> None:
    assert keep_ltr_order(text) == expected
    assert keep_ltr_order(expected) == expected  # applying it twice adds nothing


def test_english_text_is_never_changed_so_it_stays_gsm7() -> None:
    body = render_body("Your visit on {{ appointment_date }}, call {{ clinic_phone }}", VALUES, Channel.SMS)

    assert direction_marks(body) == 0 and count_segments(body).encoding == "GSM-7"


def test_a_sent_body_without_variables_gets_the_marks_too() -> None:
    assert render_body("اتصل على +966114567890", {}, Channel.SMS) == f"اتصل على {LRM}+966114567890"


def test_the_segment_count_counts_each_mark_as_one_ucs2_character() -> None:
    # Arabic and a time: 70 characters without the mark (one part), 71 with it (two parts).
    text = "ا" * 64 + " " + "12:30"
    body = render_body(text, {}, Channel.SMS)

    assert len(text) == 70 and count_segments(text).segments == 1
    assert len(body) == 71 and count_segments(body).units == 71 and count_segments(body).segments == 2


def test_the_editor_preview_shows_and_counts_what_is_sent() -> None:
    check = check_body(Channel.SMS, ARABIC, language=Language.AR)

    sent = render_body(ARABIC, {"appointment_date": "2026-12-01", "appointment_time": "09:30",
                                "clinic_phone": "+966112345678"}, Channel.SMS)
    assert check.preview == sent
    assert check.direction_marks == 3
    assert check.characters == len(sent) and check.encoding == "UCS-2"
    assert check.segments == count_segments(sent).segments


def test_the_arabic_preview_uses_arabic_sample_values() -> None:
    check = check_body(Channel.SMS, "مرحبا {{ patient_name }} من {{ clinic_name }}", language=Language.AR)

    assert check.preview == "مرحبا سارة القحطاني من عيادة النور"


_PIECES = st.sampled_from(["موعدك", "في", "Sara", " ", "\n", "+966114567890", "2026-12-01", "09:30", "50%", "7",
                           "AB-12", "https://x.sa/1", "،", ".", "-", "+", "١٢"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_marks_are_only_added_never_change_the_text_and_a_second_pass_adds_none(text: str) -> None:
    marked = keep_ltr_order(text)

    assert marked.replace(LRM, "").replace(RLM, "") == text
    assert keep_ltr_order(marked) == marked
    assert len(marked) - len(text) == direction_marks(marked) - direction_marks(text)
    if not any("\u0600" <= c <= "\u06ff" for c in text):
        assert marked == text


def test_the_counter_names_one_mark_and_several_in_good_english() -> None:
    assert marks_note(1) == "1 direction mark that keeps a number in order"
    assert marks_note(3) == "3 direction marks that keep numbers in order"
