"""Numbers inside Arabic text keep their order: one LEFT-TO-RIGHT MARK before each number that follows
Arabic letters.

Without it a handset's (or browser's) bidi algorithm shows ``+966114567890`` after an Arabic word as
``966114567890+`` (the ``+`` is taken as right-to-left punctuation) and ``2026-12-01`` as ``01-12-2026``
(digits after Arabic letters count as Arabic numbers, and the dashes between them as right-to-left).
A LEFT-TO-RIGHT MARK (U+200E) just before the number makes its digits and separators one
left-to-right run, in the order they were written. When a right-to-left paragraph *starts* with a
number, a RIGHT-TO-LEFT MARK (U+200F) goes first, so the paragraph still reads right to left (handsets
take a paragraph's direction from its first strong character).

Words in Latin letters (codes such as ``AB12``, URLs, names) are left-to-right by themselves and need
nothing, and neither does a plain run of digits (``0501234567`` reads the same either way); only a
number that a right-to-left context would take apart, one starting with ``+`` or with separators
between its digits (``2026-12-01``, ``09:30``, ``06/12/2026``, ``1,500``), gets a mark, and only
when the nearest strong character before it, in its paragraph, is right-to-left.

The result is what is sent and what the preview shows (``app.templating.render_template`` applies
it), so the segment counter counts the marks: each is one UCS-2 code unit, and text holding them is
already UCS-2 (it holds Arabic letters). Applying it twice adds nothing.
"""

from __future__ import annotations

import re
import unicodedata

LRM = "\u200e"  # LEFT-TO-RIGHT MARK
RLM = "\u200f"  # RIGHT-TO-LEFT MARK
DIRECTION_MARKS = frozenset((LRM, RLM))

_NUMBER = re.compile(r"\+?[0-9]+(?:[-/.:,][0-9]+)*")
_RTL = ("R", "AL")
_MAYBE_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\u200f\U00010800-\U00010fff\U0001e800-\U0001efff]")


def _strong(char: str) -> str | None:
    """``"L"`` or ``"R"`` for a strong character (Arabic letters count as R), else None."""
    kind = unicodedata.bidirectional(char)
    if kind == "L":
        return "L"
    if kind in _RTL:
        return "R"
    return None


def _paragraph(text: str) -> str:
    out: list[str] = []
    first_strong = next((s for s in map(_strong, text) if s), None)
    last: str | None = None  # direction of the nearest strong character before this point
    i = 0
    while i < len(text):
        char = text[i]
        match = _NUMBER.match(text, i) if char in "+0123456789" else None
        if match is not None and (i == 0 or not text[i - 1].isdigit()):
            if char == "+" or not match.group().isdigit():  # plain digits read the same either way
                if last == "R":
                    out.append(LRM)
                    last = "L"
                elif last is None and first_strong == "R":
                    out.append(RLM + LRM)
                    last = "L"
            end = match.end()
            out.append(text[i:end])
            i = end
            continue
        direction = _strong(char)
        if direction:
            last = direction
        out.append(char)
        i += 1
    return "".join(out)


def keep_ltr_order(text: str) -> str:
    """``text`` with a mark before every number that right-to-left text would reorder (see above)."""
    if not _MAYBE_RTL.search(text):
        return text  # no right-to-left letter: nothing can be reordered (English stays GSM-7)
    return "".join(_paragraph(part) for part in re.split(r"(\n)", text))


def direction_marks(text: str) -> int:
    """How many direction marks (LRM, RLM) ``text`` holds: each is one UCS-2 code unit in an SMS."""
    return sum(1 for char in text if char in DIRECTION_MARKS)


def marks_note(count: int) -> str:
    """What a counter says of ``count`` direction marks: ``1 direction mark that keeps a number in order``,
    ``3 direction marks that keep numbers in order``."""
    if count == 1:
        return "1 direction mark that keeps a number in order"
    return f"{count:,} direction marks that keep numbers in order"


def reads_right_to_left(text: str) -> bool:
    """Whether ``text`` reads right to left: its first letter with a direction is Arabic, Hebrew ..."""
    return next((s for s in map(_strong, str(text)) if s), None) == "R"
