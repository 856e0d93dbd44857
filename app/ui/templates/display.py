"""Drawing a template's text: labels, literal left-to-right text, the live counter under a text box,
the side-by-side preview (Arabic right to left) and the variable reference."""

from __future__ import annotations

import streamlit as st

from app.bidi import marks_note
from app.services import templates
from app.services.templates import BodyCheck
from app.ui import rtl
from app.ui.text import plain
from db.enums import Channel, Language, MessageClass

ARABIC_EMPTY = "The Arabic text is empty: patients who prefer Arabic get the English text."


def class_label(value: MessageClass) -> str:
    """'Service' or 'Promotional'."""
    return value.value.capitalize()


def language_label(value: Language | None) -> str:
    """A test send's language choice, in words."""
    return "The clinic's default" if value is None else value.label


def show_ltr(text: str, *, empty: str = "(empty)") -> None:
    """Left-to-right text shown literally (escaped), line breaks kept."""
    if text.strip():
        st.markdown("  \n".join(plain(line) if line.strip() else "" for line in text.splitlines()))
    else:
        st.caption(empty)


def show_check(check: BodyCheck) -> None:
    """The live counter under a text box: encoding, segments, length, cost and problems."""
    parts = [check.encoding]
    if check.channel == Channel.SMS:
        parts.append(f"{check.segments} segment{'s' if check.segments != 1 else ''} "
                     f"of up to {check.per_segment} characters")
    marks = ""
    if check.direction_marks:  # app.bidi: each keeps a number in order inside Arabic text, and counts
        marks = f" (including {marks_note(check.direction_marks)})"
    parts.append(f"{check.characters:,} of {check.limit:,} characters{marks}")
    parts.append(f"about {check.estimated_cost:.4f} {plain(check.currency)} per message")
    st.caption(" · ".join(parts))
    if check.error:
        st.warning(plain(check.error), icon=":material/warning:")
    for unknown in check.unknown_variables:
        st.warning(plain(unknown.message), icon=":material/help:")
    if check.over_limit:
        st.warning(f"Too long: {check.channel.label} allows at most {check.limit:,} characters.",
                   icon=":material/warning:")
    for warning in check.reply_warnings:  # how the text asks patients to reply (app.reply_lint)
        st.warning(plain(warning), icon=":material/reply:")
    if check.stray_characters_hint:
        st.info(plain(check.stray_characters_hint), icon=":material/lightbulb:")


def show_preview(english: BodyCheck, arabic: BodyCheck, arabic_body: str,
                 subjects: tuple[BodyCheck, BodyCheck] | None = None) -> None:
    """Both languages rendered with sample data, side by side; Arabic right to left."""
    english_column, arabic_column = st.columns(2)
    with english_column:
        st.markdown("**English**")
        if subjects is not None:
            st.caption("Subject")
            show_ltr(subjects[0].preview)
            st.caption("Text")
        show_ltr(english.preview)
    with arabic_column:
        st.markdown("**Arabic**")
        if not arabic_body.strip():
            st.info(ARABIC_EMPTY, icon=":material/translate:")
            show_ltr(english.preview)
            return
        if subjects is not None:
            st.caption("Subject")
            rtl.show(subjects[1].preview if subjects[1].preview else subjects[0].preview)
            st.caption("Text")
        rtl.show(arabic.preview)


def variable_reference() -> None:
    """The documented variables, folded away under the editor's fields."""
    with st.expander("Variables you can use", icon=":material/data_object:"):
        st.caption("Write a variable as {{ patient_name }} or {patient_name}.")
        st.dataframe(
            [{"Variable": v.name, "Meaning": v.meaning, "Example (English)": v.example_en,
              "Example (Arabic)": v.example_ar} for v in templates.variable_reference()],
            hide_index=True,
        )
