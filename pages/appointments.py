"""Appointments: the clinic's appointments (kept current from its own system) and, for admins, an upload
reviewed before anything is written."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st

from app.services.appointments import listing, upload
from app.services.appointments.listing import AppointmentCursor, AppointmentFilter
from app.services.appointments.records import Kind
from app.services.permissions import Permission
from app.ui import cached, feedback, session, times
from app.ui.text import as_text, counted, plain
from db.enums import AppointmentStatus

actor = session.require_actor(Permission.VIEW_APPOINTMENTS)
UPLOAD = "appointments.upload"  # the file's review, kept across reruns
PAGES = "appointments.pages"  # the cursors of the pages seen, per filter
page_of = cached.clinic_cached(ttl=30)(listing.appointments)  # a page of the list, at most 30 seconds old

st.title("Appointments", anchor=False)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if clinic is None:
    st.stop()
zone = ZoneInfo(clinic.timezone)
feedback.show_flash("appointments")


def upcoming() -> None:
    today = dt.datetime.now(zone).date()
    left, middle, right = st.columns([2, 2, 3])
    days = left.date_input(f"Days (clinic time, {times.zone_name(zone)})", value=(today, today + dt.timedelta(days=7)),
                           key="appt_days")
    statuses = middle.multiselect("Status", list(AppointmentStatus), format_func=lambda s: s.label, key="appt_status")
    text = right.text_input("Patient name or MRN", key="appt_text")
    if not isinstance(days, tuple) or len(days) != 2:
        st.caption("Choose the last day too.")
        return
    flt = AppointmentFilter(days[0], days[1], tuple(statuses), text)
    pages: dict = st.session_state.setdefault(PAGES, {})
    cursors: list[AppointmentCursor | None] = pages.setdefault(flt, [None])
    page = feedback.attempt(lambda: page_of(actor, flt, cursor=cursors[-1]))
    if page is None:
        return
    if not page.rows:
        st.info("No appointments in these days." if len(cursors) == 1 else "No more appointments.",
                icon=":material/event_busy:")
    else:
        start, reminders = times.heading("Start", zone), times.heading("Reminders", zone)
        # status and reminders next to the patient: at 1,400 px the last columns need a sideways scroll
        st.dataframe([{start: times.local(r.starts_at, zone), "Patient": as_text(r.patient_name_en),
                       "Patient (Arabic)": as_text(r.patient_name_ar), "Status": r.status.label,
                       reminders: as_text(r.reminders) or "—", "Doctor": as_text(r.doctor_name_en or r.doctor_name_ar),
                       "Department": as_text(r.department), "Type": as_text(r.appointment_type),
                       "MRN": as_text(r.mrn)} for r in page.rows],
                     hide_index=True, width="stretch",
                     column_config={start: times.column(),
                                    "Patient (Arabic)": st.column_config.TextColumn(alignment="right")})
    back, forward = st.columns(2)
    if len(cursors) > 1 and back.button("Earlier page", key="appt_back"):
        cursors.pop()
        st.rerun()
    if page.next_cursor is not None and forward.button("Next page", key="appt_next"):
        cursors.append(page.next_cursor)
        st.rerun()


def upload_tab() -> None:
    with st.expander("Columns the file may have"):
        st.caption("CSV (UTF-8, comma or semicolon) or Excel (.xlsx); the first row names the columns, in any case. "
                   f"Times are clinic time ({times.zone_name(zone)}). At most {upload.MAX_ROWS:,} rows.")
        st.dataframe([{"Column": name, "Also read as": ", ".join(upload.COLUMNS[name][1:]), "What": help_text}
                      for name, help_text in upload.COLUMN_HELP.items()], hide_index=True, width="stretch")
    state: dict = st.session_state.setdefault(UPLOAD, {})
    file = st.file_uploader("Appointment list", type=["csv", "xlsx"], key=f"appt_file_{state.get('round', 0)}",
                            max_upload_size=upload.MAX_UPLOAD_BYTES // 1024 // 1024)
    if file is None:
        if state.get("result"):
            show_result(state["result"])
        return
    with st.spinner("Reading and checking the file…"):
        reviewed = feedback.attempt_once(state, "review", (file.file_id,), lambda: session.call(
            upload.review, file.getvalue(), file.name))
    if reviewed is None:
        return
    show_review(reviewed)
    if st.button(f"Apply {counted(reviewed.writes, 'change')}", type="primary", key="appt_apply",
                 disabled=reviewed.writes == 0):
        result = feedback.service(upload.commit, reviewed)
        if result is not None:
            page_of.clear()
            refused = [(upload.row_of(reviewed, r.index), r.source_id, r.reason) for r in result.refused]
            st.session_state[UPLOAD] = {"round": state.get("round", 0) + 1, "result": (result, refused)}
            feedback.flash("appointments", f"Applied: {result.created:,} new, {result.changed:,} changed, "
                                           f"{result.cancelled:,} cancelled, {result.unchanged:,} unchanged.")
            st.rerun()


def show_review(reviewed: upload.UploadReview) -> None:
    st.caption(f"{plain(reviewed.filename)}: {counted(reviewed.total, 'appointment')} read. Nothing is saved until "
               "you apply.")
    cols = st.columns(5)
    for col, (label, number) in zip(cols, [("New", reviewed.to_create), ("Changed", reviewed.to_change),
                                           ("Cancelled", reviewed.to_cancel), ("Unchanged", reviewed.unchanged),
                                           ("Refused", len(reviewed.refused))], strict=True):
        col.metric(label, f"{number:,}")
    notes = [f"{counted(reviewed.new_patients, 'new patient')} will be added."] if reviewed.new_patients else []
    if reviewed.ignored_columns:
        notes.append("Columns not used: " + ", ".join(reviewed.ignored_columns) + ".")
    for note in notes:
        st.caption(plain(note))
    for kind in (Kind.CREATE, Kind.CHANGE, Kind.CANCEL):
        rows = reviewed.samples[kind]
        if rows:
            with st.expander(f"{kind.label}: the first {len(rows)}"):
                st.dataframe(sample_rows(rows), hide_index=True, width="stretch",
                             column_config={times.heading("Start", zone): times.column()})
    if reviewed.refused:
        st.subheader(f"Refused: {len(reviewed.refused):,}, and why", anchor=False)
        st.dataframe([{"Row": r.row, "Appointment id": as_text(r.source_id), "Reason": as_text(r.reason)}
                      for r in reviewed.refused[:2000]], hide_index=True, width="stretch")


def sample_rows(rows: list[upload.ReviewRow]) -> list[dict]:
    start = times.heading("Start", zone)
    return [{"Row": r.row, "Appointment id": as_text(r.source_id), "MRN": as_text(r.patient_mrn),
             start: times.local(r.starts_at, zone), "Status": r.status.label if r.status else "—",
             "What changes": ", ".join(r.changed) + (f" (was {times.clinic_time(r.before_starts_at, zone)})"
                                                      if r.before_starts_at else "")} for r in rows]


def show_result(kept: tuple) -> None:
    result, refused = kept
    if refused:
        st.warning(f"{counted(len(refused), 'row')} of the last upload {'was' if len(refused) == 1 else 'were'} "
                   "refused and not saved.")
        st.dataframe([{"Row": row, "Appointment id": as_text(source_id), "Reason": as_text(reason)}
                      for row, source_id, reason in refused[:2000]], hide_index=True, width="stretch")
    if result.patients_created:
        st.caption(f"{counted(result.patients_created, 'patient')} added.")


if actor.can(Permission.IMPORT_APPOINTMENTS):
    list_tab, file_tab = st.tabs(["Upcoming", "Upload"], key="appt_tab", on_change="rerun")  # only the open one runs
    if list_tab.open:
        with list_tab:
            upcoming()
    if file_tab.open:
        with file_tab:
            upload_tab()
else:
    upcoming()
