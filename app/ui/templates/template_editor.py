"""The editor (admins): a new template, or a new version of an existing one, with the live counter
under each text box, sample values and the preview in both languages."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.services import templates
from app.services.templates import BodyCheck, TemplateDetail
from app.ui import cached, feedback, session
from app.ui.templates.display import ARABIC_EMPTY, class_label, show_check, show_preview, variable_reference
from app.ui.templates.state import open_next, submit
from app.ui.text import plain
from db.enums import Channel, Language, MessageClass


def editor(detail: TemplateDetail | None) -> None:
    """The form for a new template (``detail`` None) or the next version of ``detail``; saves on Save."""
    prefix = "new" if detail is None else f"edit_{detail.id}_{detail.current_version}"  # a saved version: new keys

    def key(name: str) -> str:
        return feedback.form_key(prefix, f"{prefix}_{name}")

    slots: dict[str, DeltaGenerator] = {}
    channels = list(Channel)
    classes = list(MessageClass)
    left, right = st.columns(2)
    with left:
        code = st.text_input(
            "Code", value=detail.code if detail else "", key=key("code"), disabled=detail is not None,
            help="2 to 64 characters: lower-case letters, digits, underscore or dash (e.g. appointment_reminder).",
        )
        slots["code"] = st.empty()
        name = st.text_input("Name", value=detail.name if detail else "", key=key("name"))
        slots["name"] = st.empty()
    with right:
        channel = st.selectbox(
            "Channel", channels, index=channels.index(detail.channel) if detail else 0,
            format_func=lambda c: c.label, key=key("channel"), disabled=detail is not None,
        )
        slots["channel"] = st.empty()
        message_class = st.selectbox(
            "Class", classes, index=classes.index(detail.message_class) if detail else 0,
            format_func=class_label, key=key("class"),
            help="Service: appointments and results. Promotional: offers, which patients can opt out of.",
        )
        slots["message_class"] = st.empty()
    clinic = feedback.attempt(lambda: cached.clinic(session.require_actor()))  # the clinic's promotional window
    st.caption("**What this class means:** " + " ".join(templates.class_rules(
        message_class, channel, window=clinic.promotional_window if clinic else None)))
    description = st.text_area("Description (for staff only)", value=detail.description if detail else "",
                               key=key("description"), height=68)
    custom_text = st.text_input(
        "Extra variables a bulk send supplies (optional, comma-separated)", key=key("custom"),
        help="Names besides the documented ones, e.g. offer.",
    )
    custom = tuple(part.strip() for part in custom_text.split(",") if part.strip())
    variable_reference()

    is_email = channel == Channel.EMAIL
    english_column, arabic_column = st.columns(2)
    with english_column:
        st.markdown("**English**")
        subject_en = ""
        if is_email:
            subject_en = st.text_input("English subject", value=detail.subject_en if detail else "",
                                       key=key("subject_en"))
            slots["subject_en"] = st.empty()
        body_en = st.text_area("English text", value=detail.body_en if detail else "", key=key("body_en"),
                               height=160)
        english_counter = st.container()
        slots["body_en"] = st.empty()
    with arabic_column:
        st.markdown("**Arabic**")
        subject_ar = ""
        if is_email:
            subject_ar = st.text_input("Arabic subject", value=detail.subject_ar if detail else "",
                                       key=key("subject_ar"))
            slots["subject_ar"] = st.empty()
        body_ar = st.text_area(
            "Arabic text (optional)", value=detail.body_ar if detail else "", key=key("body_ar"), height=160,
            help="The text box shows the text as typed; the preview below shows it right to left.",
        )
        arabic_counter = st.container()
        slots["body_ar"] = st.empty()

    # First pass: which variables the texts use, to offer their sample values.
    used: set[str] = set()
    for source, language in ((body_en, Language.EN), (body_ar, Language.AR),
                             (subject_en, Language.EN), (subject_ar, Language.AR)):
        if source.strip():
            used |= set(templates.check_body(channel, source, language=language, custom_variables=custom).variables)
    overrides = {Language.EN: {}, Language.AR: {}}
    if used:
        with st.expander("Sample values for the preview", icon=":material/edit_note:"):
            defaults = {lang: templates.sample_values(lang, sorted(used)) for lang in (Language.EN, Language.AR)}
            for variable in sorted(used):
                english_sample, arabic_sample = st.columns(2)
                overrides[Language.EN][variable] = english_sample.text_input(
                    f"{plain(variable)} (English)", value=str(defaults[Language.EN][variable]),
                    key=key(f"sample_en_{variable}"))
                overrides[Language.AR][variable] = arabic_sample.text_input(
                    f"{plain(variable)} (Arabic)", value=str(defaults[Language.AR][variable]),
                    key=key(f"sample_ar_{variable}"))

    def check(source: str, language: Language) -> BodyCheck:
        return templates.check_body(channel, source, language=language, custom_variables=custom,
                                    sample_values_override=overrides[language])

    english, arabic = check(body_en, Language.EN), check(body_ar, Language.AR)
    with english_counter:
        show_check(english)
    with arabic_counter:
        if body_ar.strip():
            show_check(arabic)
        else:
            st.caption(ARABIC_EMPTY)

    st.markdown("##### Preview with sample data")
    subjects = (check(subject_en, Language.EN), check(subject_ar, Language.AR)) if is_email else None
    show_preview(english, arabic, body_ar, subjects)

    note = st.text_input("What changed (kept with the version, optional)", key=key("note"), max_chars=500)
    general = st.empty()
    if not st.button("Save", type="primary", icon=":material/save:", key=key("save")):
        return
    if detail is None:
        created = submit(lambda: session.call(
            templates.create_template, code=code, name=name, channel=channel, message_class=message_class,
            description=description, body_en=body_en, body_ar=body_ar, subject_en=subject_en,
            subject_ar=subject_ar, custom_variables=custom, note=note,
        ), slots, general)
        if created is not None:
            feedback.new_form(prefix)  # the next new template starts from an empty form
            open_next(str(created.id), "templates", f"Created {plain(created.code)} (version 1).")
    else:
        saved = submit(lambda: session.call(
            templates.update_template, detail.id, name=name, message_class=message_class,
            description=description, body_en=body_en, body_ar=body_ar, subject_en=subject_en,
            subject_ar=subject_ar, custom_variables=custom, note=note,
        ), slots, general)
        if saved is not None:
            open_next(str(saved.id), "templates", f"Saved {plain(saved.code)} as version {saved.current_version}.")
