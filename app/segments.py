"""SMS segment counting: GSM-7 (160 / 153 per part) or UCS-2 (70 / 67 per part).

GSM-7 extension characters (``^ { } \\ [ ~ ] | €`` and form feed) take two septets. Any other
character outside the GSM-7 alphabet switches the whole message to UCS-2, where length is
counted in UTF-16 code units (an emoji is 2). A part never splits an escape pair or a
surrogate pair, as handsets would not reassemble it.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67
MAX_BODY_CHARS = 1600  # Twilio's body limit


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # capacity of each part for this message
    non_gsm_chars: tuple[str, ...]  # the characters that forced UCS-2, in order of appearance

    @property
    def stray_characters_hint(self) -> str | None:
        """A hint when a few characters alone force UCS-2 (e.g. a curly quote or an emoji)."""
        if self.encoding != "UCS-2" or not self.non_gsm_chars or len(self.non_gsm_chars) > 3:
            return None
        shown = " ".join(f"'{c}' (U+{ord(c):04X})" for c in self.non_gsm_chars)
        return (
            f"Only {shown} {'is' if len(self.non_gsm_chars) == 1 else 'are'} outside the GSM-7 alphabet and "
            f"{'forces' if len(self.non_gsm_chars) == 1 else 'force'} the whole message into UCS-2 "
            f"({UCS2_SINGLE} characters per part instead of {GSM7_SINGLE})."
        )


def _is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _count_parts(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            parts += 1
            used = 0
        used += cost
    return parts


def count_segments(text: str) -> SegmentInfo:
    """How ``text`` would be split into SMS parts."""
    if _is_gsm7(text):
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        parts = _count_parts(costs, GSM7_SINGLE, GSM7_MULTI)
        return SegmentInfo("GSM-7", sum(costs), parts, GSM7_SINGLE if parts <= 1 else GSM7_MULTI, ())
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    parts = _count_parts(costs, UCS2_SINGLE, UCS2_MULTI)
    stray = tuple(dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION))
    return SegmentInfo("UCS-2", sum(costs), parts, UCS2_SINGLE if parts <= 1 else UCS2_MULTI, stray)
