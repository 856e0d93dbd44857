"""Numbers as people paste them: direction marks, full-width and Arabic digits, odd spaces, tel: URIs.

What the project refuses on purpose (letters read as keypad digits, ``++``, extensions) stays
refused whatever invisible characters surround it.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.phones import InvalidPhoneNumber, normalise_phone, phone_search_key

E164 = "+966501234567"
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EASTERN_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
FORMAT_CHARS = ["\u200f", "\u200e", "\u061c", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
                "\u2067", "\u2068", "\u2069", "\u200b", "\u2060", "\ufeff", "\u00ad"]
SPACES = ["\u00a0", "\u202f", "\u2007", "\u2009", "\u3000", "\t"]


@pytest.mark.parametrize("typed", [
    "\u200f+966501234567",  # right-to-left mark left by copying from Arabic text
    "+966501234567\u200f",
    "\u061c+966 50 123 4567",  # Arabic letter mark
    "\u200e+966 50 123 4567\u200e",  # left-to-right marks
    "\u2067+966501234567\u2069",  # a right-to-left isolate around it
    "\u2066+966 50 123 4567\u2069",
    "\u202b0501234567\u202c",  # an embedding
    "\u202e+966501234567\u202c",  # an override
    "+966\u200b50\u200b123\u200b4567",  # zero-width spaces
    "\ufeff0501234567",  # a byte-order mark from a file
    "＋966501234567",  # full-width plus
    "＋９６６５０１２３４５６７",  # full-width digits too
    "٠٥٠١٢٣٤٥٦٧",  # Arabic-Indic digits
    "۰۵۰۱۲۳۴۵۶۷",  # Eastern Arabic-Indic (Persian) digits
    "\u200f+٩٦٦٥٠١٢٣٤٥٦٧",
    "+966\u00a050\u00a0123\u00a04567",  # non-breaking spaces
    "+966\u202f50\u202f123\u202f4567",  # narrow no-break spaces
    "050\u2009123\u20094567",  # thin spaces
    "050–123–4567",  # en dashes
    "050‑123‑4567",  # non-breaking hyphens
    "tel:+966-50-123-4567",  # RFC 3966
    "TEL:+966501234567",
    " tel:+966.50.123.4567 ",
    "tel:501234567;phone-context=+966",  # a local number in a numeric context
    "\u200ftel:+966-50-123-4567",
])
def test_a_valid_number_typed_or_pasted_is_read(typed: str) -> None:
    assert normalise_phone(typed, "SA") == E164
    assert phone_search_key(typed, "SA") == E164


@pytest.mark.parametrize("typed,reason", [
    ("050-ABC-DEFG", "letters"),  # keypad letters
    ("\u200f050-ABC-DEFG", "letters"),
    ("++966501234567", "misplaced '+'"),
    ("\u200f++966501234567", "misplaced '+'"),
    ("+\u200f+966501234567", "misplaced '+'"),
    ("＋＋966501234567", "misplaced '+'"),
    ("+966501234567 ext 12", "extension"),
    ("+966501234567 x12", "extension"),
    ("\u200f+966501234567\u200f ext. 12", "extension"),
    ("tel:+966501234567;ext=12", "extension"),
    ("tel:+966501234567;isub=1234", "could not be read"),
    ("tel:0501234567;phone-context=example.com", "could not be read"),
    ("tel:", "empty"),
    ("\u200f\u200e\u2069", "empty"),
    ("+966 50 123 456#", "characters other than"),
    ("tel:+966501234567?", "characters other than"),
])
def test_what_the_project_refuses_stays_refused(typed: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=re.escape(reason)):
        normalise_phone(typed, "SA")
    assert phone_search_key(typed, "SA") is None


@given(st.lists(st.sampled_from(FORMAT_CHARS + SPACES + [" ", "-"]), max_size=6),
       st.lists(st.integers(min_value=0, max_value=13), min_size=6, max_size=6),
       st.sampled_from([str, lambda s: s.translate(FULL_WIDTH), lambda s: s.translate(ARABIC_INDIC),
                        lambda s: s.translate(EASTERN_ARABIC_INDIC)]))
def test_invisible_characters_and_look_alike_digits_anywhere_after_the_plus_change_nothing(
        extras: list[str], positions: list[int], script) -> None:  # type: ignore[no-untyped-def]
    text = E164
    for char, at in zip(extras, positions, strict=False):
        at = max(1, min(at, len(text)))  # never between a leading format character and nothing
        text = text[:at] + char + text[at:]
    assert normalise_phone(script(text), "SA") == E164


@given(st.lists(st.sampled_from(FORMAT_CHARS), min_size=1, max_size=4))
def test_invisible_characters_never_smuggle_a_refused_number_through(marks: list[str]) -> None:
    for refused in ("050-ABC-DEFG", "++966501234567", "+966501234567 ext 12"):
        for i, mark in enumerate(marks):
            at = (i * 3) % len(refused)
            refused = refused[:at] + mark + refused[at:]
        with pytest.raises(InvalidPhoneNumber):
            normalise_phone(refused, "SA")
