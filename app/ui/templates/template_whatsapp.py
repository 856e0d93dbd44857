"""The WhatsApp tab of a WhatsApp template: the linked Content template, its approval, the SMS fallback."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.services import whatsapp_templates
from app.services.templates import TemplateDetail
from app.ui import feedback, session, times
from app.ui.templates.display import show_ltr
from app.ui.templates.state import open_next, submit
from db.enums import Channel


def whatsapp_tab(detail: TemplateDetail, local: ZoneInfo, can_edit: bool) -> None:
    """The linked Content template (what WhatsApp approved), its approval, and the SMS fallback."""
    link = feedback.service(whatsapp_templates.get_whatsapp_link, detail.id)
    if link is None:
        return
    st.caption("Outside the 24 hours after a patient last wrote to us, WhatsApp delivers only a template it "
               "approved. Link the Twilio Content template (HX...) that carries this text, and map its numbered "
               "variables to ours. Bulk sends refuse a WhatsApp template that is not approved.")
    feedback.show_flash("whatsapp")
    checked = f" · checked {times.clinic_time(link.checked_at, local)}" if link.checked_at else ""
    status = f"**Approval:** {link.status_label}{checked}"
    (st.success if link.approved else st.warning)(status, icon=":material/verified:" if link.approved else
                                                  ":material/pending:")
    if link.approval_reason:
        st.write("Reason given by WhatsApp:")
        show_ltr(link.approval_reason)
    if link.content_sid and st.button("Refresh approval status", icon=":material/refresh:",
                                      key=f"refresh_approval_{detail.id}"):
        if feedback.service(whatsapp_templates.refresh_approval, detail.id):
            open_next(str(detail.id), "whatsapp", "Asked Twilio for the current approval status.")
    if not can_edit:
        return
    with st.form(f"whatsapp_link_{detail.id}"):
        slots: dict[str, DeltaGenerator] = {}
        content_sid = st.text_input("Content SID", value=link.content_sid or "", key=f"content_sid_{detail.id}",
                                    help="HX followed by 32 hexadecimal characters; empty to unlink.")
        slots["content_sid"] = st.empty()
        mapping = st.text_area("Variables (one per line: number = our variable)",
                               value=whatsapp_templates.format_variable_map(link.variable_map),
                               key=f"variable_map_{detail.id}", help="e.g. 1 = patient_name", height=100)
        slots["variable_map"] = st.empty()
        fallback = st.checkbox("If WhatsApp fails for good (not on WhatsApp, no approved template), send it by SMS",
                               value=link.fallback_channel == Channel.SMS, key=f"fallback_{detail.id}")
        slots["fallback_channel"] = st.empty()
        general = st.empty()
        if st.form_submit_button("Save WhatsApp settings") and submit(
                lambda: session.call(whatsapp_templates.set_whatsapp_link, detail.id, content_sid=content_sid,
                                     variable_map=whatsapp_templates.parse_variable_map(mapping),
                                     fallback_channel=Channel.SMS if fallback else None), slots, general):
            open_next(str(detail.id), "whatsapp", "Saved the WhatsApp settings.")
