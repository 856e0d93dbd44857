"""Inbox: patients' replies that need a person. Open a thread, answer it, assign it, mark it done.

The open thread lives in the URL (``?thread=<id>``), so a link to it can be shared.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st

from app.services import inbox
from app.services.permissions import Permission
from app.ui import cached, feedback, session, times
from app.ui import inbox as ui

actor = session.require_actor(Permission.WORK_INBOX)

st.title("Inbox", anchor=False)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if clinic is None:
    st.stop()
zone = ZoneInfo(clinic.timezone)
thread_id = ui.thread_from_url()
view = feedback.service(inbox.thread, thread_id) if thread_id else None  # opening it reads it: before the counts
unread = feedback.service(inbox.unread_total)
st.caption(f"{unread or 0:,} unread {'reply' if unread == 1 else 'replies'} · times in {times.zone_name(zone)}")

# --- the threads --------------------------------------------------------------------------------

chosen = ui.filter_form()
after = ui.page_cursor()
page = feedback.service(inbox.threads, **chosen.arguments(), after=after)
if page is None:
    st.stop()
if page.rows:
    st.caption("Click a row to open the thread. Unread replies are marked ●.")
    opened = ui.table(page.rows, zone, abs(hash((after, chosen))))
    if opened is not None:
        ui.open_thread(opened)
        st.rerun()  # opened (and read) before the list is drawn again
else:
    st.info("No thread matches these filters.", icon=":material/inbox:")
ui.paging(page.next_cursor)

# --- one thread ---------------------------------------------------------------------------------

if thread_id is not None:
    st.divider()
    if view is not None:
        ui.heading(view, zone)
        feedback.show_flash("inbox")
        ui.actions(view)
        ui.timeline(view, zone)
        ui.answer_form(view.id, zone)
    if st.button("Close the thread", icon=":material/close:"):
        ui.close_thread()
        st.rerun()
