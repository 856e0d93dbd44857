"""Phone numbers: normalise what staff type or upload to E.164, refusing what a clinic should not send to.

``phonenumbers`` is lenient: it reads letters as keypad digits (``050-ABC-DEFG``), accepts
``++966...`` and silently drops extensions. Those are refused here with a reason a clerk can act on.

What people paste is read as the library reads it: invisible direction marks and other format
characters (left by copying from Arabic text: U+200F, U+061C, U+200E, bidi embeddings and
isolates) are dropped, any Unicode space is a space, full-width ``＋`` and digits, Arabic-Indic
and Eastern Arabic-Indic digits and typographic dashes are their ASCII forms, and an RFC 3966
``tel:`` URI gives its number (``tel:+966-50-123-4567``; ``;ext=`` is refused like any extension).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_ALLOWED_CHARS = re.compile(r"^[\d\s()+.\-/\u00a0]+$")
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# Invisible format characters: soft hyphen, Arabic letter mark, zero-width space/joiners, LRM/RLM,
# bidi embeddings and overrides, word joiner and invisible operators, bidi isolates, BOM.
_FORMAT_CHARS = re.compile("[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Arabic-Indic, Eastern Arabic-Indic and full-width digits; full-width plus; hyphens, dashes and
# minus; full-width brackets, full stop and solidus.
_LOOK_ALIKES = str.maketrans(
    "٠١٢٣٤٥٦٧٨٩" "۰۱۲۳۴۵۶۷۸۹" "０１２３４５６７８９" "＋" "‐‑‒–—―−－" "（）．／",
    "0123456789" "0123456789" "0123456789" "+" "--------" "()./",
)


class InvalidPhoneNumber(ValueError):
    """The text is not a usable mobile number; ``str(err)`` says why."""


def normalise_phone(raw: str | None, default_region: str = "SA", *, require_mobile: bool = True) -> str:
    """Return ``raw`` as E.164 (``+966501234567``) or raise InvalidPhoneNumber with the reason."""
    text = _as_typed(raw)
    if not text:
        raise InvalidPhoneNumber("the number is empty")
    if text[:4].lower() == "tel:":
        text = _tel_uri_number(text[4:])
        if not text:
            raise InvalidPhoneNumber("the number is empty")
    if re.search(r"[A-Za-z]", text):
        if re.search(r"(ext\.?|x|#)\s*\d", text, flags=re.IGNORECASE):
            raise InvalidPhoneNumber("the number has an extension; SMS cannot reach an extension")
        raise InvalidPhoneNumber("the number contains letters")
    if not _ALLOWED_CHARS.match(text):
        raise InvalidPhoneNumber("the number contains characters other than digits, spaces, + ( ) - .")
    if text.count("+") > 1 or (text.count("+") == 1 and not text.startswith("+")):
        raise InvalidPhoneNumber("the number has a misplaced '+'")
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        raise InvalidPhoneNumber("the number is too short")
    if len(digits) > 15:
        raise InvalidPhoneNumber("the number is too long")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException:
        raise InvalidPhoneNumber("the number could not be read") from None
    if number.extension:
        raise InvalidPhoneNumber("the number has an extension; SMS cannot reach an extension")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("the number is not a valid phone number for its country")
    if require_mobile and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhoneNumber("the number is not a mobile number (a landline cannot receive SMS)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _as_typed(raw: str | None) -> str:
    """The text without invisible format characters, with ASCII spaces, digits, '+' and dashes."""
    text = _FORMAT_CHARS.sub("", raw or "")
    text = "".join(" " if ch.isspace() else ch for ch in text)
    return text.translate(_LOOK_ALIKES).strip()


def _tel_uri_number(rest: str) -> str:
    """The number of an RFC 3966 ``tel:`` URI (after ``tel:``): global, or local with a numeric phone-context."""
    number, *params = rest.strip().split(";")
    context = None
    for param in params:
        name, _, value = param.partition("=")
        name = name.strip().lower()
        if name == "ext":
            raise InvalidPhoneNumber("the number has an extension; SMS cannot reach an extension")
        if name != "phone-context" or not re.fullmatch(r"\+[\d().\-]+", value.strip()):
            raise InvalidPhoneNumber("the number could not be read (a tel: address with parameters)")
        context = value.strip()
    number = number.strip()
    if context and not number.startswith("+"):
        number = context + number  # RFC 3966: a local number within a numeric context
    return number


def phone_search_key(raw: str, default_region: str = "SA") -> str | None:
    """The E.164 form of a phone typed into a search box, or None when it is not a phone number."""
    try:
        return normalise_phone(raw, default_region, require_mobile=False)
    except InvalidPhoneNumber:
        return None


def mask_phone(e164: str) -> str:
    """``+966501234567`` -> ``+9665******67`` (for roles that see contacts masked)."""
    if len(e164) <= 7:
        return "*" * len(e164)
    return e164[:5] + "*" * (len(e164) - 7) + e164[-2:]
