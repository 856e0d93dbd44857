"""Home: who is signed in, at which clinic, and how the clinic's messages are doing."""

from __future__ import annotations

import streamlit as st

from app.services.permissions import Permission
from app.ui import cached, feedback, session
from app.ui.text import plain

actor = session.require_actor()

st.title("Home", anchor=False)
st.markdown(
    f"Signed in as **{plain(actor.display_name)}** ({plain(actor.username)}), "
    f"{actor.role.label}, at **{plain(actor.tenant_name)}**."
)

service = session.messaging()
paused = feedback.attempt(lambda: service.is_paused(actor.tenant_id))
if paused:
    st.error(
        "Sending is paused for this clinic. New and waiting messages are kept and nothing is sent "
        "until an admin resumes sending.",
        icon=":material/pause_circle:",
    )
feedback.show_flash("sending")
if actor.can(Permission.PAUSE_SENDING):
    with st.expander("Emergency stop: pause all sending", icon=":material/emergency:", expanded=bool(paused)):
        if paused:
            if st.button("Resume sending", type="primary", icon=":material/play_arrow:"):
                waiting = feedback.attempt(lambda: service.resume_sending(actor.tenant_id, actor=actor))
                if waiting is not None:
                    feedback.flash("sending", f"Sending resumed; {waiting:,} waiting messages are on their way.")
                    st.rerun()
        else:
            st.write("Use this if a wrong message is going out. Messages not yet sent wait; nothing is lost.")
            reason = st.text_input("Reason (kept in the audit log)", key="pause_reason", max_chars=500)
            sure = st.checkbox("I want to stop all sending for the whole clinic now", key="pause_confirm")
            if st.button("Pause all sending", type="primary", icon=":material/pause:", disabled=not sure):
                if feedback.attempt(lambda: service.pause_sending(actor.tenant_id, actor=actor, reason=reason)):
                    feedback.flash("sending", "All sending is paused.")
                    st.rerun()

numbers = feedback.attempt(lambda: cached.headline(actor))
if numbers is None:
    st.stop()

st.subheader("Your clinic", anchor=False)
patients, staff, templates, in_progress = st.columns(4)
patients.metric("Patients", f"{numbers.patients:,}", border=True)
staff.metric("Staff", f"{numbers.staff:,}", border=True)
templates.metric("Active templates", f"{numbers.active_templates:,}", border=True)
in_progress.metric(
    "In progress", f"{numbers.in_progress:,}", border=True,
    help="Messages scheduled, queued or being sent in the last 7 days.",
)

st.subheader("Messages in the last 7 days", anchor=False)
sent, delivered, failed, rate = st.columns(4)
sent.metric("Messages", f"{numbers.messages_7d:,}", border=True)
delivered.metric("Delivered", f"{numbers.delivered_7d:,}", border=True)
failed.metric("Failed", f"{numbers.failed_7d:,}", border=True)
rate.metric(
    "Success rate",
    "—" if numbers.success_rate_7d is None else f"{numbers.success_rate_7d:.1%}",
    border=True,
    help="Delivered out of the messages that were either delivered or failed.",
)

st.caption("Figures are at most a minute old.")
if st.button("Refresh", icon=":material/refresh:"):
    cached.forget_headline(actor)
    st.rerun()
