"""An admin's tabs of one template: send a test (never twice for one click), and manage:
(de)activate, duplicate, delete."""

from __future__ import annotations

import time

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.services import templates
from app.services.templates import TemplateDetail
from app.ui import feedback, session
from app.ui.templates.display import language_label
from app.ui.templates.state import open_next, submit
from app.ui.text import plain
from db.enums import Channel, Language

RESEND_AFTER_SECONDS = 10


def test_tab(detail: TemplateDetail) -> None:
    """Send the current version to a number or address typed here, marked as a test."""
    if not detail.is_active:
        st.info("Only active templates can be sent. Activate it under Manage first.", icon=":material/info:")
    st.caption("Sends the current version through the real delivery pipeline, marked as a test: "
               "it is kept out of the statistics.")
    recipient = st.text_input(
        "Send to (phone number)" if detail.channel != Channel.EMAIL else "Send to (e-mail address)",
        key=f"test_recipient_{detail.id}",
    )
    language = st.selectbox("Language", [None, Language.EN, Language.AR], format_func=language_label,
                            key=f"test_language_{detail.id}")
    overrides: dict[str, str] = {}
    if detail.variables:
        defaults = templates.sample_values(language or Language.EN, detail.variables)
        with st.expander("Sample values", icon=":material/edit_note:"):
            st.caption("Leave a value as it is to use the sample (the clinic's own name and phone by default).")
            for name in detail.variables:
                value = st.text_input(plain(name), value=str(defaults.get(name, "")),
                                      key=f"test_{detail.id}_{language}_{name}")  # per language: its own samples
                if value != str(defaults.get(name, "")):
                    overrides[name] = value
    if not st.button("Send test", icon=":material/send:", key=f"test_send_{detail.id}"):
        return
    # A second click while the first is on its way must not send the same test twice.
    request = (detail.current_version, recipient.strip(), language, tuple(sorted(overrides.items())))
    last_key = f"test_last_{detail.id}"
    last = st.session_state.get(last_key)
    if last is not None and last[0] == request and time.monotonic() - last[1] < RESEND_AFTER_SECONDS:
        st.info(f"This test was just sent. To send it again, wait {RESEND_AFTER_SECONDS} seconds.",
                icon=":material/info:")
        return
    result = feedback.service(templates.test_send, detail.id, recipient=recipient, language=language,
                              sample_values_override=overrides)
    if result is not None:
        st.session_state[last_key] = (request, time.monotonic())
        st.success(f"Test message {result.message_id} created; status: {result.status.value}.",
                   icon=":material/check_circle:")
        if result.note:
            st.caption(plain(result.note))


def manage_tab(detail: TemplateDetail) -> None:
    """(De)activate, duplicate under a new code, delete (typing the code to confirm)."""
    if detail.is_active:
        st.write("Active: it can be sent.")
        if st.button("Deactivate", icon=":material/block:", key=f"deactivate_{detail.id}"):
            if feedback.service(templates.set_active, detail.id, False):
                open_next(str(detail.id), "templates", f"{plain(detail.code)} is no longer sent.")
    else:
        st.write("Inactive: it cannot be sent until it is activated.")
        if st.button("Activate", icon=":material/check_circle:", key=f"activate_{detail.id}"):
            if feedback.service(templates.set_active, detail.id, True):
                open_next(str(detail.id), "templates", f"{plain(detail.code)} can be sent again.")

    st.markdown("##### Duplicate")
    slots: dict[str, DeltaGenerator] = {}
    new_code = st.text_input("New code", value=f"{detail.code}_copy"[:64], key=f"copy_code_{detail.id}")
    slots["code"] = st.empty()
    new_name = st.text_input("New name", value=f"{detail.name} (copy)", key=f"copy_name_{detail.id}")
    slots["name"] = st.empty()
    general = st.empty()
    if st.button("Duplicate", icon=":material/content_copy:", key=f"duplicate_{detail.id}"):
        copy = submit(lambda: session.call(templates.duplicate_template, detail.id, new_code=new_code,
                                           new_name=new_name), slots, general)
        if copy is not None:
            open_next(str(copy.id), "templates", f"Copied {plain(detail.code)} to {plain(copy.code)}.")

    st.markdown("##### Delete")
    st.write("Deleting hides the template everywhere; messages already sent keep it. The code can be reused.")
    typed = st.text_input(f"Type the code {plain(detail.code)} to confirm", key=f"delete_confirm_{detail.id}")
    if st.button("Delete template", icon=":material/delete:", key=f"delete_{detail.id}",
                 disabled=typed.strip() != detail.code):
        deleted = feedback.attempt(lambda: session.call(templates.delete_template, detail.id) or True)
        if deleted:
            open_next("", "templates", f"Deleted {plain(detail.code)}.")
