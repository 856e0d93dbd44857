"""The Patients page's "Correct contacts" form: mobile, e-mail and language of one patient.

Drawn only for a role that may change them (front desk, admin); the service checks again,
refuses a form read before someone else's change, and readdresses the messages still waiting.
"""

from __future__ import annotations

import streamlit as st

from app.errors import ConflictError
from app.services import patients
from app.services.patients import ContactChange, ContactUpdate, PatientSummary
from app.services.permissions import Actor, Permission
from app.ui import feedback, session
from app.ui.text import as_text
from db.enums import Language

FLASH = "contacts"
STALE = "contacts.stale"
LANGUAGE_LABELS = {Language.EN: "English", Language.AR: "Arabic"}


def saved_message(change: ContactChange) -> str:
    """What the clerk reads after a save: what changed and what happened to waiting messages."""
    names = {"phone": "mobile number", "email": "e-mail address", "language": "language"}
    said = " and ".join(names[name] for name in change.changed)
    parts = [f"Saved the {said}."]
    if change.readdressed:
        parts.append(f"{change.readdressed} message(s) not yet sent will go to the new contact.")
    if change.cancelled:
        parts.append(f"{change.cancelled} message(s) waiting for the removed contact were cancelled.")
    if change.relanguaged:
        parts.append(f"{change.relanguaged} message(s) not yet sent are now in the new language.")
    return " ".join(parts)


def edit_form(actor: Actor, patient: PatientSummary) -> None:
    """The form, or nothing for a role that may not correct contacts.

    The form keeps the version of the contacts it was first filled from (a page rerun reads the
    patient again), so a save after someone else's change is refused; the form then shows the
    contacts as they are now.
    """
    if not actor.can(Permission.EDIT_PREFERENCES):
        return
    form = f"contacts-{patient.id}"  # after a save (or a refusal) a new form, filled from the patient as stored
    keys = [feedback.form_key(form, f"contacts_{name}_{patient.id}") for name in ("phone", "email", "language",
                                                                                   "version")]
    seen = st.session_state.setdefault(keys[-1], patient.version)
    feedback.show_flash(FLASH)
    refused = st.session_state.pop(STALE, None)
    if refused:
        st.error(refused, icon=":material/sync_problem:")
    with st.expander("Correct contacts", icon=":material/edit:", expanded=bool(refused)), \
            st.form(form):
        st.caption("Numbers may be typed as the patient says them (e.g. 050 123 4567). Messages not yet sent "
                   "go to the corrected contact; messages already sent keep the one they used.")
        phone = st.text_input("Mobile number", value=patient.phone or "", max_chars=40, key=keys[0])
        email = st.text_input("E-mail address", value=patient.email or "", max_chars=254, key=keys[1])
        languages = list(LANGUAGE_LABELS)
        language = st.selectbox("Language on the record", languages, index=languages.index(patient.language),
                                format_func=LANGUAGE_LABELS.__getitem__, key=keys[2])
        if st.form_submit_button("Save contacts", type="primary"):
            def save() -> ContactChange | ConflictError:
                try:
                    return session.call(patients.change_contacts, patient.id,
                                        ContactUpdate(phone, email, language), version=seen)
                except ConflictError as err:
                    return err

            result = feedback.attempt(save)
            if isinstance(result, ConflictError):
                st.session_state[STALE] = as_text(result)
            elif result is not None:
                feedback.flash(FLASH, saved_message(result))
            if result is not None:
                feedback.new_form(form)
                st.rerun()
