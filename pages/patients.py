"""Patients: find a patient, see contacts, preferences and messages, and why a message did not arrive."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import streamlit as st

from app.services import explorer, patients
from app.services.explorer import MessageFilter
from app.services.patients import SOURCE_LABELS, PreferenceUpdate
from app.services.permissions import Permission
from app.ui import cached, feedback, patient_contacts, reports, rtl, send_one, session, times
from app.ui import explorer as ui
from app.ui.text import plain
from db.enums import Channel, Language

actor = session.require_actor(Permission.VIEW_PATIENTS)

st.title("Patients", anchor=False)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if clinic is None:
    st.stop()
zone = ZoneInfo(clinic.timezone)

typed = st.text_input("Find a patient", value=st.query_params.get("q", ""),
                      placeholder="Phone number (any format), e-mail, MRN or name in English or Arabic")
found = feedback.service(patients.search_patients, typed) if typed.strip() else []
if typed.strip() and found == []:
    st.info("No patient matches.", icon=":material/search_off:")
if found:
    by_id = {p.id: p for p in found}
    current = st.query_params.get("patient", "")
    ids = list(by_id)
    index = next((n for n, i in enumerate(ids) if str(i) == current), 0)
    chosen = st.radio("Patients found", ids, index=index,
                      format_func=lambda i: f"{plain(by_id[i].name_en or by_id[i].name_ar)} · "  # radio: Markdown
                                            f"{plain(by_id[i].phone or '-')} · MRN {plain(by_id[i].mrn or '-')}")
    if str(chosen) != current or st.query_params.get("q") != typed:
        st.query_params.from_dict({"q": typed, "patient": str(chosen)})
        st.rerun()

try:
    patient_id = uuid.UUID(st.query_params.get("patient", ""))
except ValueError:
    st.stop()
detail = feedback.service(patients.patient_detail, patient_id)
if detail is None:
    st.stop()
p, prefs = detail.patient, detail.preferences

with st.container(border=True):
    st.subheader(plain(p.name_en) if p.name_en else "(no English name)", anchor=False)
    rtl.show(p.name_ar, empty="(no Arabic name)")
    st.markdown("  \n".join([
        f"**Mobile:** {plain(p.phone or '-')}", f"**E-mail:** {plain(p.email or '-')}",
        f"**MRN:** {plain(p.mrn or '-')}", f"**Language on the record:** {p.language.label}"]))
    patient_contacts.edit_form(actor, p)

st.subheader("Why didn't they get it?", anchor=False)
for line in detail.why_not:
    st.markdown(f"- {plain(line)}")
if actor.can(Permission.SEND_MESSAGES):
    send_one.section(p.id)

st.subheader("Preferences", anchor=False)
left, right = st.columns(2, gap="large")
with left:
    quiet = (f"{prefs.quiet_hours_start:%H:%M}-{prefs.quiet_hours_end:%H:%M}"
             if prefs.quiet_hours_start and prefs.quiet_hours_end else "none")
    st.markdown("  \n".join([
        *(f"**{c.label}:** {'yes' if prefs.allows(c) else 'opted out'}" for c in Channel),
        f"**Language messages use:** {patients.messages_language(p, prefs)}",
        f"**Quiet hours:** {quiet}"]))
with right:
    if actor.can(Permission.EDIT_PREFERENCES):
        with st.form(f"prefs-{p.id}"):
            st.caption("Change only when the patient asks; the reason is kept in the history.")
            opt_ins = {c: st.toggle(f"{c.label} messages", value=prefs.allows(c)) for c in Channel}
            languages = [None, Language.EN, Language.AR]
            language = st.selectbox("Language messages use", languages, index=languages.index(prefs.language),
                                    format_func=lambda x: f"As on the patient record ({p.language.label})"
                                    if x is None else x.label)
            start = st.time_input("Quiet hours from", value=prefs.quiet_hours_start, step=1800)
            end = st.time_input("Quiet hours until", value=prefs.quiet_hours_end, step=1800)
            reason = st.text_input("Reason", placeholder="e.g. patient asked at the front desk", max_chars=500)
            if st.form_submit_button("Save preferences", type="primary") and feedback.service(
                    patients.change_preferences, p.id, PreferenceUpdate(
                        opt_ins[Channel.SMS], opt_ins[Channel.WHATSAPP], opt_ins[Channel.EMAIL], language, start,
                        end), reason=reason):
                feedback.flash("prefs", "Preferences saved.")
                st.rerun()
        feedback.show_flash("prefs")

# the page's full width: seven columns, the reason last (in a half-width column By and Reason were cut off)
st.subheader("Opt-out and preference history", anchor=False)
if detail.history:
    when = times.heading("When", zone)
    st.dataframe([{when: times.local(h.at, zone), "What": h.what, "From": h.before, "To": h.after,
                   "Source": SOURCE_LABELS[h.source], "By": h.changed_by, "Reason": h.reason} for h in detail.history],
                 hide_index=True, width="stretch", column_config=reports.preference_history_columns(when))
else:
    st.caption("No changes recorded.")

st.subheader("Messages", anchor=False)
theirs = MessageFilter(period="all", patient_id=p.id)
result = feedback.service(explorer.list_messages, theirs, limit=50)
if result and result.rows:
    st.dataframe(ui.table_rows(result.rows, zone), hide_index=True, width="stretch",
                 column_config={times.heading("Time", zone): times.column()})
    if actor.can(Permission.VIEW_MESSAGES):
        st.markdown(f"[Open all of them in Messages](/messages?{urlencode(theirs.to_params())})")
else:
    st.caption("No messages yet.")
