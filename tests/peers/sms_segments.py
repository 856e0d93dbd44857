"""SMS segment counting as Twilio bills it (GSM-7 vs UCS-2), used by the fake to fill `num_segments`.

GSM-7: 160 septets in one segment, 153 per segment when split; characters of the extension
table (`^ { } \\ [ ~ ] | €` and form feed) take two septets. Any other character outside GSM-7
switches the whole message to UCS-2: 70 UTF-16 code units in one segment, 67 when split.
A split never cuts an escape pair or a surrogate pair in half.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM-7 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _pack(units: list[int], single: int, multi: int) -> int:
    total = sum(units)
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def count_segments(text: str) -> int:
    """Number of SMS segments Twilio would send for `text` (0 for an empty body)."""
    if not text:
        return 0
    if is_gsm7(text):
        return _pack([2 if ch in GSM7_EXTENSION else 1 for ch in text], 160, 153)
    return _pack([2 if ord(ch) > 0xFFFF else 1 for ch in text], 70, 67)
