"""The Settings page's "Appointments API" section (admins): the API's address, the clinic's keys,
a new key shown once, and revoking a key after a confirmation."""

from __future__ import annotations

import streamlit as st

from app.services import api_keys
from app.services.api_keys import ApiKeyView
from app.services.permissions import Actor, Permission
from app.ui import feedback, times
from app.ui.text import as_text, plain

FLASH = "api_keys"
NEW_KEY = "api_keys.new"  # the key just created: shown on the next run only
REVOKING = "api_keys.revoking"  # the key whose revocation waits for a confirmation


def _label(key: ApiKeyView) -> str:
    return as_text(f"{key.name} ({key.prefix}…)")


def _table(keys: list[ApiKeyView], timezone: str) -> None:
    created, used, revoked = (times.heading(name, timezone) for name in ("Created", "Last used", "Revoked"))
    st.dataframe(  # a time not there yet is a word, not "None" (what a time column shows for it)
        [{"Name": as_text(k.name), "Key starts with": k.prefix, created: times.local(k.created_at, timezone),
          "Created by": as_text(k.created_by or "—"),
          used: times.clinic_time(k.last_used_at, timezone, label=False) if k.last_used_at else "never",
          revoked: times.clinic_time(k.revoked_at, timezone, label=False)} for k in keys],
        hide_index=True, key="api_keys_table",
        column_config={created: times.column(),
                       used: st.column_config.TextColumn(help="Noted at most once a minute.")})


def _revoke(live: list[ApiKeyView]) -> None:
    by_id = {key.id: key for key in live}
    pending = by_id.get(st.session_state.get(REVOKING))
    if pending is None:
        chosen = st.selectbox("Key to revoke", list(by_id), format_func=lambda i: _label(by_id[i]),
                              key="api_key_revoke_choice")
        if st.button("Revoke key…", icon=":material/key_off:", key="api_key_revoke"):
            st.session_state[REVOKING] = chosen
            st.rerun()
        return
    st.warning(f"Revoke {plain(pending.name)} ({plain(pending.prefix)}…)? The system using it is refused from its next "
               "request on, and this cannot be undone: it will need a new key.", icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button("Yes, revoke it", type="primary", key="api_key_revoke_yes"):
        st.session_state.pop(REVOKING, None)
        if feedback.service(api_keys.revoke, pending.id) is not None:
            feedback.flash(FLASH, f"Revoked {plain(pending.name)} ({plain(pending.prefix)}…).")
            st.rerun()
    if no.button("Keep it", key="api_key_revoke_no"):
        st.session_state.pop(REVOKING, None)
        st.rerun()


def section(actor: Actor, timezone: str) -> None:
    """The section, or nothing for a role that may not manage the API's keys."""
    if not actor.can(Permission.MANAGE_REMINDERS):
        return
    st.subheader("Appointments API", anchor=False)
    st.caption("Your clinic's own system books, changes and cancels appointments here (HL7 FHIR R4 Appointment) "
               "and reads back what patients answered to their reminders. Give each system its own key; revoke a "
               "key when the system is replaced or the key may have leaked. Times are in your clinic's time zone.")
    st.text(f"The API's address: {api_keys.api_address()}")
    feedback.show_flash(FLASH)
    new = st.session_state.pop(NEW_KEY, None)
    if new is not None:
        st.warning("Copy this key into your system now: it is shown only once. It is sent as "
                   "'Authorization: Bearer <key>'.", icon=":material/key:")
        st.code(new, language=None)
    with st.form("api_key_new"):
        name = st.text_input("Name of the system that will use the key", max_chars=api_keys.MAX_NAME_LENGTH,
                             key=feedback.form_key("api_key_new", "api_key_name"), placeholder="e.g. Clinic HIS")
        if st.form_submit_button("Create key"):
            created = feedback.service(api_keys.create, name)
            if created is not None:
                st.session_state[NEW_KEY] = created.plaintext
                feedback.flash(FLASH, f"Created the key {plain(created.view.name)} ({plain(created.view.prefix)}…).")
                feedback.new_form("api_key_new")
                st.rerun()
    keys = feedback.service(api_keys.list_keys)
    if not keys:
        st.caption("No keys yet: the API refuses every request until you create one.")
        return
    _table(keys, timezone)
    live = [key for key in keys if not key.is_revoked]
    if live:
        _revoke(live)
