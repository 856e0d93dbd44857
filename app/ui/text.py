"""Showing stored text (names, reasons, bodies) safely in Streamlit: the one place that does it.

Stored text is shown as text, never as Markdown or HTML, and its bidirectional control characters
cannot reorder what surrounds it:

- ``plain(value)`` for anything Streamlit reads as Markdown (``st.markdown``, ``st.caption``,
  ``st.info``/``success``/``warning``/``error``, ``st.subheader``, ``st.expander``/``st.tabs``
  labels, widget labels): every Markdown-special character is escaped, so a patient named
  ``[click](http://evil)``, ``![x](http://evil/x.png)``, ``**bold**`` or ``<img src=x>`` shows
  exactly as typed; ``&`` too, so ``&#x202E;`` stays six characters instead of becoming a control.
- ``as_text(value)`` for places Streamlit shows literally (``selectbox``/``multiselect``
  ``format_func`` options, ``st.text``, table cells): no escaping, bidi only.

Both remove the directional embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069)
a value carries, and wrap a value that holds right-to-left letters (Arabic, Hebrew ...) in a
FIRST STRONG ISOLATE (U+2068) ... POP DIRECTIONAL ISOLATE (U+2069) pair, so an Arabic name lays
itself out without moving the Latin text, numbers and punctuation around it. The marks
U+200E, U+200F and U+061C are kept: they change no order outside the value.
"""

from __future__ import annotations

import re
import unicodedata

FSI = "\u2068"  # FIRST STRONG ISOLATE
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")
_MAYBE_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]")


def strip_bidi_controls(value: object) -> str:
    """``value`` as text without embeddings, overrides and isolates (marks are kept)."""
    return BIDI_CONTROLS.sub("", str(value))


def _isolated(text: str) -> str:
    if _MAYBE_RTL.search(text) and any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        return f"{FSI}{text}{PDI}"
    return text


def as_text(value: object) -> str:
    """``value`` for a place shown literally (option labels, ``st.text``): bidi made harmless."""
    return _isolated(strip_bidi_controls(value))


def plain(value: object) -> str:
    """``value`` as literal text inside Markdown: a name like ``*Dr_Ali*`` shows as typed."""
    return _isolated(_MARKDOWN_SPECIAL.sub(r"\\\1", strip_bidi_controls(value)))


def counted(number: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 recipients`` (English nouns that take an ``s``)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
