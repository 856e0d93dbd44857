"""Showing Arabic (right-to-left) text safely in Streamlit's Markdown.

Streamlit's Markdown has no ``dir`` attribute and raw HTML is never allowed with stored
or typed text, so the direction comes from Unicode itself: each line is escaped with
``app.ui.text.plain`` (Markdown shows it literally, HTML and script included) and wrapped in a
RIGHT-TO-LEFT ISOLATE (U+2067) ... POP DIRECTIONAL ISOLATE (U+2069) pair. Inside the isolate the
browser's bidi algorithm lays the line out right to left, while Latin names, dates and numbers
embedded in it keep their own left-to-right order and stay readable. The isolate also keeps the
line from reordering the text around it.

Directional control characters already in the text (embeddings, overrides, isolates:
U+202A..U+202E, U+2066..U+2069) are removed from what is shown, so stored text cannot close our
isolate early or reverse the screen to hide what it says. ``show`` also right-aligns what it draws
(a fixed stylesheet on its own containers), on every page that shows Arabic.

A template's Arabic *source* (``show_source``) also has Latin placeholders in it: ``{{ patient_name }}``
laid out right to left would show its braces flipped and could be broken across lines. Each Jinja
construct (``app.templating.TEMPLATE_CONSTRUCT``: ``{{ name }}``, ``{name}``, ``{% if %}``, ``{# #}``) is
shown as a LEFT-TO-RIGHT ISOLATE (U+2066) ... POP DIRECTIONAL ISOLATE pair inside the line, its spaces
no-break spaces: it reads as written, in one piece, in its place in the Arabic sentence (a no-break
space is still a space to Jinja, should the text be copied back). Display only: the stored and sent
text never holds them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import streamlit as st

from app.bidi import reads_right_to_left
from app.templating import TEMPLATE_CONSTRUCT
from app.ui.text import PDI, plain, strip_bidi_controls

RLI = "\u2067"  # RIGHT-TO-LEFT ISOLATE
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE
NBSP = "\u00a0"  # NO-BREAK SPACE


def isolate(line: str) -> str:
    """One line of text as a right-to-left isolate (no Markdown escaping)."""
    return f"{RLI}{strip_bidi_controls(line)}{PDI}"


def rtl_markdown(text: str) -> str:
    """``text`` as Markdown that shows it literally, each line right to left, line breaks kept."""
    lines = [isolate(plain(line)) if line.strip() else "" for line in str(text).splitlines()]
    return "  \n".join(lines)


def _escaped(text: str) -> str:
    return strip_bidi_controls(plain(text))  # plain's own isolate goes: the line's RLI holds it


def _source_line(line: str) -> str:
    line, parts, at = strip_bidi_controls(line), [], 0
    for construct in TEMPLATE_CONSTRUCT.finditer(line):
        unbroken = construct.group().replace(" ", NBSP)  # a line may not end inside it
        parts += [_escaped(line[at:construct.start()]), f"{LRI}{_escaped(unbroken)}{PDI}"]
        at = construct.end()
    parts.append(_escaped(line[at:]))
    return f"{RLI}{''.join(parts)}{PDI}"


def source_markdown(text: str) -> str:
    """A template's source as ``rtl_markdown`` shows it, each placeholder a left-to-right isolate
    (display only, see above)."""
    return "  \n".join(_source_line(line) if line.strip() else "" for line in str(text).splitlines())


# A fixed stylesheet (no stored or typed content ever goes into it): Arabic text boxes (widget
# keys containing "_ar") and the containers ``show`` draws into are laid out right to left.
_RTL_STYLE = """<style>
div[class*="st-key-"][class*="body_ar"] textarea,
div[class*="st-key-"][class*="subject_ar"] input,
div[class*="st-key-"][class*="name_ar"] input,
div[class*="st-key-rtl-"], div[class*="st-key-rtl-"] p { direction: rtl; text-align: right; }
</style>"""
_containers = itertools.count()


def style_arabic_inputs() -> None:
    """Lay out this page's Arabic text boxes and previews right to left (call once per page run)."""
    st.html(_RTL_STYLE)


def show(text: str, *, empty: str = "(empty)") -> None:
    """Draw ``text`` right to left and right-aligned (or ``empty`` as a caption when there is nothing)."""
    _draw(text, rtl_markdown, empty)


def show_source(text: str, *, empty: str = "(empty)") -> None:
    """A template's Arabic source, like ``show``, its placeholders left to right (``source_markdown``)."""
    _draw(text, source_markdown, empty)


def _draw(text: str, as_markdown: Callable[[str], str], empty: str) -> None:
    if str(text).strip():
        style_arabic_inputs()  # style only: takes no room on the page, harmless when repeated
        with st.container(key=f"rtl-{next(_containers)}"):
            st.markdown(as_markdown(text))
    else:
        st.caption(empty)


def is_arabic(text: str) -> bool:
    """Whether ``text`` reads right to left (its first letter with a direction is Arabic, Hebrew ...)."""
    return reads_right_to_left(text)


def show_text(text: str, *, empty: str = "(empty)") -> None:
    """Stored text in its own direction: Arabic right to left and right-aligned, anything else as is."""
    if is_arabic(text):
        show(text, empty=empty)
    elif str(text).strip():
        st.markdown("  \n".join(plain(line) if line.strip() else "" for line in str(text).splitlines()))
    else:
        st.caption(empty)
