"""The list of a clinic's templates (filters and a table with usage) and the picker that opens one."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st

from app.services.permissions import Actor
from app.services.templates import TemplateSummary
from app.ui import feedback, reports, times
from app.ui.templates.display import class_label
from app.ui.templates.state import NEW, NEXT_KEY, OPEN_KEY, summaries
from app.ui.text import as_text
from db.enums import Channel

ACTIVE_FILTER = {"All": None, "Active": True, "Inactive": False}


def template_table(actor: Actor, everything: list[TemplateSummary], local: ZoneInfo) -> list[TemplateSummary] | None:
    """Filters (channel, status, search) and the table of the templates they match; None when the
    filtered read failed (the error is shown)."""
    channel_filter, active_filter, search_box = st.columns([1, 1, 2])
    channel_choice = channel_filter.selectbox("Channel", [None, *Channel], key="templates_channel",
                                              format_func=lambda c: "All" if c is None else c.label)
    active_choice = active_filter.selectbox("Status", list(ACTIVE_FILTER), key="templates_active")
    search = search_box.text_input("Search by code or name", key="templates_search")
    shown = feedback.attempt(lambda: summaries(
        actor, channel_choice.value if channel_choice else None, ACTIVE_FILTER[active_choice], search))
    if shown is None:
        return None
    last_used = times.heading("Last used", local)
    rows = [
        {
            "Code": t.code, "Name": t.name, "Channel": t.channel.label, "Class": class_label(t.message_class),
            "Active": t.is_active, "Sent": t.messages_sent, "Delivery rate": t.delivery_rate,
            last_used: times.local(t.last_used_at, local), "Version": t.current_version,
        }
        for t in shown
    ]
    st.dataframe(rows, hide_index=True,
                 column_config={**reports.count_columns(rows), **reports.template_list_columns(last_used)})
    if not shown:
        st.caption("No templates match." if everything else "Your clinic has no templates yet.")
    return shown


def picker(everything: list[TemplateSummary], can_edit: bool) -> str:
    """The "Open a template" choice: a template's id, ``NEW`` (admins) or "" for none; kept in the URL
    (``?template=``) and moved to a template just changed (``NEXT_KEY``)."""
    by_id = {str(t.id): t for t in everything}
    options = ["", *([NEW] if can_edit else []), *by_id]
    if NEXT_KEY in st.session_state:
        st.session_state[OPEN_KEY] = st.session_state.pop(NEXT_KEY)
    elif OPEN_KEY not in st.session_state:
        st.session_state[OPEN_KEY] = st.query_params.get("template", "")
    if st.session_state[OPEN_KEY] not in options:
        st.session_state[OPEN_KEY] = ""

    def option_label(value: str) -> str:
        if value == NEW:
            return "New template…"
        if value in by_id:
            return f"{as_text(by_id[value].code)} — {as_text(by_id[value].name)}"
        return "Choose a template"

    chosen = st.selectbox("Open a template", options, format_func=option_label, key=OPEN_KEY)
    if chosen:
        st.query_params["template"] = chosen
    elif "template" in st.query_params:
        del st.query_params["template"]
    return chosen or ""
