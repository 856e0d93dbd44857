"""Home: who is signed in, at which clinic, and how the clinic's messages are doing."""

from __future__ import annotations

import streamlit as st

from app.ui import cached, feedback, session
from app.ui.text import plain

actor = session.require_actor()

st.title("Home", anchor=False)
st.markdown(
    f"Signed in as **{plain(actor.display_name)}** ({plain(actor.username)}), "
    f"{actor.role.label}, at **{plain(actor.tenant_name)}**."
)

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
