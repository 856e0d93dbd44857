"""Audit log: who did what to which object, when. Filter, page through, export (audited)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st

from app.services import audit
from app.services.audit import AuditCursor, AuditFilter
from app.services.permissions import Permission
from app.ui import cached, feedback, reports, session, times
from app.ui.text import as_text

actor = session.require_actor(Permission.VIEW_AUDIT)
PAGES_KEY = "audit.cursors"  # the cursor each page shown so far starts at
FILTER_KEY = "audit.filter"
EXPORT_KEY = "audit.export"
ALL = "all"

st.title("Audit log", anchor=False)
st.caption(
    "Every sign-in, change, send and export in your clinic, newest first. "
    "Entries cannot be edited or deleted."
)

options = feedback.service(audit.choices)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if options is None or clinic is None:
    st.stop()
local = ZoneInfo(clinic.timezone)

with st.container(border=True):
    who_column, action_column = st.columns([1, 2])
    who = who_column.selectbox(
        "Who", [None, *options.users], key="audit_user",
        format_func=lambda user_id: "Everyone" if user_id is None else as_text(options.users[user_id]),
    )
    actions = action_column.multiselect(
        "What", options.actions, key="audit_actions", format_func=audit.action_label,
        placeholder="Every action",
    )
    type_column, object_column, days_column = st.columns([1, 1, 1])
    object_type = type_column.selectbox(
        "Object type", [ALL, *options.object_types], key="audit_object_type",
        format_func=lambda value: "Any" if value == ALL else audit.object_type_label(value),
    )
    object_id = object_column.text_input("Object id", key="audit_object_id", max_chars=64,
                                         help="The id shown in the Id column, e.g. a message's id.")
    days = days_column.date_input("Days (clinic time)", value=(), key="audit_days", format="YYYY-MM-DD")

since, until = audit.local_days(days, clinic.timezone)
filters = AuditFilter(
    actor_id=who,
    actions=tuple(actions), object_type=None if object_type == ALL else object_type,
    object_id=object_id.strip() or None, since=since, until=until,
)
if st.session_state.get(FILTER_KEY) != filters:  # new filters: back to the newest page
    st.session_state[FILTER_KEY] = filters
    st.session_state[PAGES_KEY] = [None]
    st.session_state.pop(EXPORT_KEY, None)
cursors: list[AuditCursor | None] = st.session_state[PAGES_KEY]

page = feedback.service(audit.search, filters, cursor=cursors[-1])
if page is None:
    st.stop()

if page.entries:
    when = times.heading("Time", clinic.timezone)
    st.dataframe(
        [
            {
                when: times.local(entry.created_at, clinic.timezone),
                "Who": entry.actor_name,
                "Action": entry.action_label,
                "Object": entry.object_label or "—",
                "Details": entry.details_text or "—",
                "Id": entry.object_id or "",
            }
            for entry in page.entries
        ],
        hide_index=True,
        column_config=reports.audit_columns(when),
    )
else:
    st.info("No audit entries match these filters.", icon=":material/info:")

newer_column, position_column, older_column = st.columns([1, 2, 1])
if newer_column.button("Newer", icon=":material/arrow_back:", disabled=len(cursors) == 1, key="audit_newer"):
    cursors.pop()
    st.rerun()
position_column.caption(f"Page {len(cursors)} · {len(page.entries)} entries")
if older_column.button("Older", icon=":material/arrow_forward:", disabled=page.next_cursor is None,
                       key="audit_older"):
    cursors.append(page.next_cursor)
    st.rerun()

st.subheader("Export", anchor=False)
st.caption("A CSV of every entry matching the filters (not just this page). The export is recorded too.")
if st.button("Prepare CSV", icon=":material/table:", key="audit_prepare"):
    data = feedback.service(audit.export_csv, filters)
    if data is not None:
        st.session_state[EXPORT_KEY] = data
if EXPORT_KEY in st.session_state:
    st.download_button(
        "Download CSV", st.session_state[EXPORT_KEY], key="audit_download", icon=":material/download:",
        file_name=f"audit-{dt.datetime.now(local):%Y%m%d-%H%M}.csv", mime="text/csv",
    )
