"""Messages: find any message of the clinic, see what happened to it, retry or cancel it, export CSV.

The filter, the page and the open message live in the URL, so a view can be shared as a link.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from dataclasses import replace
from zoneinfo import ZoneInfo

import streamlit as st

from app.config import get_settings
from app.services import explorer, message_export, messaging
from app.services.contacts import sees_full_contacts
from app.services.explorer import PERIODS, FilterOptions, MessageFilter
from app.services.permissions import Permission
from app.ui import cached, feedback, rtl, send_one, session, times
from app.ui import explorer as ui
from app.ui.text import plain
from db.enums import Channel, Language, MessageStatus, Outcome

actor = session.require_actor(Permission.VIEW_MESSAGES)
BACK_KEY = "messages.back"  # the cursors of the pages before this one
RETRY_ALL_KEY = "messages.retry_all"
CSV_KEY = "messages.csv"
FORM = "messages.filter."  # the filter form's boxes
FORM_OF = "messages.filter_of"  # the filter they were filled from
can_act = actor.can(Permission.RETRY_MESSAGES)

st.title("Messages", anchor=False)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if clinic is None:
    st.stop()
zone = ZoneInfo(clinic.timezone)
flt, problem = ui.filter_from_url()
if problem:
    st.warning(problem, icon=":material/link_off:")
choices = feedback.attempt(lambda: ui.options(actor)) or FilterOptions({}, {})


def go(new: MessageFilter) -> None:
    st.session_state.pop(BACK_KEY, None)
    st.session_state.pop(CSV_KEY, None)
    ui.show_filter(new)


# --- filters ------------------------------------------------------------------------------------

# The form's boxes keep what was typed (keyed, so a changed default does not make them new boxes);
# they are filled from the URL's filter again whenever it changed other than by this form.
if st.session_state.get(FORM_OF) != flt.to_params():
    for key in [k for k in st.session_state if str(k).startswith(FORM)]:
        del st.session_state[key]
    st.session_state[FORM_OF] = flt.to_params()
with st.form("filters", border=True):
    search = st.text_input("Search", value=flt.search, placeholder="Phone number, e-mail or patient name",
                           help="0501234567, +966 50 123 4567 and 966501234567 all find the same patient.",
                           key=FORM + "search")
    left, middle, right = st.columns(3)
    with left:
        period = st.selectbox("Period", list(PERIODS), index=list(PERIODS).index(flt.period),
                              format_func=PERIODS.__getitem__, key=FORM + "period")
        today = dt.datetime.now(zone).date()
        dates = st.date_input("Custom dates (clinic time)", value=(flt.date_from or today - dt.timedelta(days=6),
                                                                   flt.date_to or today),
                              help="Used when the period is 'Custom dates'.", key=FORM + "dates")
    with middle:
        outcomes = st.multiselect("Outcome", list(Outcome), default=list(flt.outcomes), format_func=lambda o: o.label,
                                  help="As the Dashboard and Analytics count them: failed is failed or undelivered; "
                                       "an e-mail the mail server accepted is delivered; unknown is in progress.",
                                  key=FORM + "outcomes")
        statuses = st.multiselect("Status", list(MessageStatus), default=list(flt.statuses),
                                  format_func=ui.STATUS_BADGES.__getitem__, key=FORM + "statuses")
        channels = st.multiselect("Channel", list(Channel), default=list(flt.channels),
                                  format_func=lambda c: c.label, key=FORM + "channels")
        error_code = st.text_input("Error code", value=flt.error_code, placeholder="e.g. 21211",
                                   key=FORM + "error_code")
    with right:
        template_ids = [None, *choices.templates]
        template = st.selectbox("Template", template_ids,
                                index=template_ids.index(flt.template_id) if flt.template_id in template_ids else 0,
                                format_func=lambda i: "Any template" if i is None else choices.templates[i],
                                key=FORM + "template")
        job_ids = [None, *choices.bulk_jobs]
        bulk_job = st.selectbox("Bulk send", job_ids,
                                index=job_ids.index(flt.bulk_job_id) if flt.bulk_job_id in job_ids else 0,
                                format_func=lambda i: "Any" if i is None else choices.bulk_jobs[i],
                                key=FORM + "bulk_job")
        include_test = st.checkbox("Show test messages", value=flt.include_test, key=FORM + "include_test")
        oldest_first = st.toggle("Oldest first", value=flt.oldest_first, key=FORM + "oldest_first")
    if st.form_submit_button("Apply filters", type="primary", icon=":material/filter_alt:"):
        start, end = (*tuple(dates), None, None)[:2] if isinstance(dates, tuple) else (dates, dates)
        chosen = feedback.attempt(lambda: MessageFilter(
            period=period, date_from=start if period == "custom" else None,
            date_to=(end or start) if period == "custom" else None, statuses=tuple(statuses), outcomes=tuple(outcomes),
            channels=tuple(channels), template_id=template, bulk_job_id=bulk_job, patient_id=flt.patient_id,
            error_code=error_code.strip(), include_test=include_test, search=search.strip(),
            oldest_first=oldest_first))
        if chosen is not None:  # this same run shows it (no second run): the URL follows for sharing
            st.session_state.pop(BACK_KEY, None)
            st.session_state.pop(CSV_KEY, None)
            ui.put_in_url(chosen)
            st.session_state[FORM_OF] = chosen.to_params()
            flt = chosen
if flt.patient_id and st.button("Show all patients again", icon=":material/person_remove:"):
    go(replace(flt, patient_id=None))

# --- the page of results ------------------------------------------------------------------------

if flt.bulk_job_id and (preparing := feedback.service(explorer.bulk_job_preparation, flt.bulk_job_id)):
    st.info(f"This bulk send is still being prepared: {preparing.written:,} of about {preparing.expected:,} messages "
            "written so far. The first ones are already being sent; the rest appear here as they are written.",
            icon=":material/hourglass_top:")
after = ui.cursor_from_url()
result = feedback.service(explorer.list_messages, flt, after=after)
if result is None:
    st.stop()
total = feedback.attempt(lambda: ui.count(actor, flt))
where = " · later page" if after else ""
st.caption(f"{total.label if total else 'Count unavailable'}{where} · times in {clinic.timezone}")
if result.rows:
    st.caption("Click a row to open the message.")
    table_key = ui.table_key(after, flt.to_params())
    clicked = st.dataframe(
        ui.table_rows(result.rows, zone), hide_index=True, width="stretch", key=table_key,
        on_select="rerun", selection_mode=["single-row", "single-cell"],
        column_config={times.heading("Time", zone): times.column(seconds=True)})
    opened = ui.clicked_message(clicked, result.rows, table_key)
    if opened is not None:
        st.query_params["message"] = str(opened)
else:
    st.info("No messages match this filter.", icon=":material/search_off:")

back = st.session_state.setdefault(BACK_KEY, [])
first_col, previous_col, next_col = st.columns(3)
if first_col.button("First page", icon=":material/first_page:", disabled=after is None):
    st.session_state[BACK_KEY] = []
    ui.show_filter(flt)
if previous_col.button("Previous page", icon=":material/chevron_left:", disabled=after is None):
    earlier = back.pop() if back else ""
    ui.show_filter(flt, keep={"after": earlier} if earlier else None)
if next_col.button("Next page", icon=":material/chevron_right:", disabled=result.next_cursor is None):
    assert result.next_cursor is not None
    back.append(after.encode() if after else "")
    ui.show_filter(flt, keep={"after": result.next_cursor.encode()})

# --- acting on messages -------------------------------------------------------------------------

by_id = {row.id: row for row in result.rows}
picked = st.multiselect("Select messages on this page", list(by_id),
                        format_func=lambda i: ui.row_label(by_id[i], zone), key=f"pick-{after}-{flt.to_params()}")
retry_col, cancel_col = st.columns(2)
if can_act:
    retryable = [i for i in picked if by_id[i].can_retry]
    if retry_col.button(f"Retry selected ({len(retryable)})", icon=":material/replay:", disabled=not retryable):
        done = feedback.service(messaging.retry, retryable)
        if done is not None:
            ui.forget_counts()
            feedback.flash("act", f"{len(done)} new attempt(s) queued; each is linked to its original.")
            st.rerun()
    cancellable = [i for i in picked if by_id[i].can_cancel]
    if cancel_col.button(f"Cancel selected ({len(cancellable)})", icon=":material/cancel:", disabled=not cancellable):
        n = feedback.service(messaging.cancel, message_ids=cancellable)
        if n is not None:
            ui.forget_counts()
            feedback.flash("act", f"{n} message(s) cancelled.")
            st.rerun()
feedback.show_flash("act")

if can_act:
    with st.expander("Retry all failed messages in this filter", icon=":material/replay:"):
        params_key = str(sorted(flt.to_params().items()))
        if st.button("Count them"):
            found = feedback.service(explorer.retryable_ids, flt)
            if found is not None:
                st.session_state[RETRY_ALL_KEY] = (params_key, len(found))
        counted = st.session_state.get(RETRY_ALL_KEY)
        if counted and counted[0] == params_key:
            n = counted[1]
            st.write(f"**{n:,}** failed, undelivered or unknown message(s) in this filter can be retried. "
                     "Opt-outs still apply: a patient who opted out is not messaged.")
            sure = st.checkbox(f"Yes, retry these {n:,} messages", key=f"retry-all-{params_key}")
            if st.button(f"Retry {n:,} messages", type="primary", disabled=not (sure and n)):
                done = feedback.service(explorer.retry_filtered, flt, expected=n)
                st.session_state.pop(RETRY_ALL_KEY, None)
                if done is not None:
                    ui.forget_counts()
                    feedback.flash("retry_all", f"{len(done):,} new attempts queued.")
                    st.rerun()
        feedback.show_flash("retry_all")

# --- one message: a dialog where the eye is; while it moves it reads itself again -----------------


def message_live(message_id: uuid.UUID, was_moving: bool) -> None:
    """Status, facts, text and timeline; read again every few seconds while the message is moving."""
    detail = feedback.service(explorer.message_detail, message_id)
    if detail is None:
        return
    if was_moving and not detail.is_moving:
        st.rerun()  # it has arrived: redraw the dialog once, with its actions and without the timer
    st.subheader(f"{detail.channel.label} message · {ui.STATUS_BADGES[detail.status]}", anchor=False)
    if detail.is_moving:
        st.caption(f"On its way: this view updates itself every {ui.LIVE_SECONDS} seconds.")
    facts = ui.message_facts(detail, zone)
    st.markdown("  \n".join(f"**{name}:** {plain(value)}" for name, value in facts.items()))
    if detail.status_reason:
        st.caption(plain(detail.status_reason))
    if detail.error:
        st.error(f"Error {detail.error.code}: {detail.error.title}", icon=":material/error:")
        st.info(f"What to do: {detail.error.action}", icon=":material/lightbulb:")
    if detail.subject:
        st.markdown(f"**Subject:** {plain(detail.subject)}")
    st.markdown("**Text**")
    if detail.language == Language.AR or rtl.is_arabic(detail.body):
        rtl.show(detail.body)  # right to left, right-aligned
    else:
        st.text(detail.body)
    st.markdown("**Timeline**")
    st.dataframe([{times.heading("Time", zone): times.local(e.at, zone), "Event": e.event,
                   "From": e.from_status.value if e.from_status else "",
                   "To": e.to_status.value if e.to_status else "", "Provider": e.provider or "",
                   "Error": e.error_code or "", "Detail": e.detail} for e in detail.timeline],
                 hide_index=True, width="stretch",
                 column_config={times.heading("Time", zone): times.column(seconds=True)})


@st.dialog("Message", width="large", on_dismiss=ui.close_message)
def message_dialog(message_id: uuid.UUID) -> None:
    detail = feedback.service(explorer.message_detail, message_id)
    if detail is None:
        if st.button("Close", icon=":material/close:"):
            ui.close_message()
            st.rerun()
        return
    st.fragment(message_live, run_every=ui.LIVE_SECONDS if detail.is_moving else None)(message_id, detail.is_moving)
    links = {"Open the original": detail.retry_of_id, "Open the retry": detail.retried_as_id}
    buttons = st.columns(4)
    for column, (label, linked) in zip(buttons, links.items(), strict=False):
        if linked and column.button(label, key=f"link-{label}"):
            ui.show_filter(flt, keep={"message": str(linked)})
    if can_act and detail.can_retry and buttons[2].button("Retry this message", type="primary",
                                                          icon=":material/replay:"):
        done = feedback.service(messaging.retry, [detail.id])
        if done:
            ui.forget_counts()
            feedback.flash("detail", "A new attempt is queued, linked to this message.")
            ui.show_filter(flt, keep={"message": str(done[0].message_id)})
    if can_act and detail.can_cancel and buttons[2].button("Cancel this message", icon=":material/cancel:"):
        if feedback.service(messaging.cancel, message_ids=[detail.id]):
            ui.forget_counts()
            feedback.flash("detail", "The message is cancelled.")
            st.rerun()
    if buttons[3].button("Close", icon=":material/close:"):
        ui.close_message()
        st.rerun()
    feedback.show_flash("detail")
    if detail.patient_id and actor.can(Permission.SEND_MESSAGES) and st.toggle(
            "Send another message to this patient", key=f"message-{detail.id}-another-toggle"):
        send_one.form(detail.patient_id, place="dialog", in_dialog=True)


message_id = ui.message_from_url()
if message_id is not None:
    message_dialog(message_id)

# --- export -------------------------------------------------------------------------------------

if actor.can(Permission.EXPORT_DATA):
    with st.expander("Export this filter as CSV", icon=":material/download:"):
        columns = st.multiselect("Columns", list(message_export.EXPORT_COLUMNS),
                                 default=list(message_export.DEFAULT_COLUMNS),
                                 format_func=lambda key: message_export.EXPORT_COLUMNS[key].header)
        if not sees_full_contacts(actor):
            st.caption("Phone numbers and e-mail addresses are masked in your exports.")
        limit = get_settings().export_inline_max_rows
        if st.button("Prepare CSV", icon=":material/table_view:"):
            size = feedback.service(explorer.count_messages, flt, cap=limit)
            if size is not None and size.exact:
                out = io.BytesIO()
                rows = feedback.service(message_export.export_csv, flt, columns, out)
                if rows is not None:
                    st.session_state[CSV_KEY] = (out.getvalue(), rows)
            elif size is not None:
                started = feedback.service(message_export.request_export, flt, columns)
                if started is not None:
                    feedback.flash("export", f"More than {limit:,} rows: the export runs in the background. "
                                             "It appears below when it is ready.")
                    st.rerun()
        prepared = st.session_state.get(CSV_KEY)
        if prepared:
            st.download_button(f"Download CSV ({prepared[1]:,} rows)", prepared[0], mime="text/csv",
                               file_name=f"messages-{dt.datetime.now(zone):%Y%m%d-%H%M}.csv",
                               icon=":material/download:")
        feedback.show_flash("export")
        recent = feedback.service(message_export.list_exports) or []
        for item in recent:
            label = f"{item.created_at.astimezone(zone):%d %b %H:%M} · {item.status}"
            if item.ready:
                path = feedback.service(message_export.export_file, item.id)
                if path is not None:
                    st.download_button(f"{label} · {item.row_count:,} rows (.csv.gz)", path.read_bytes,
                                       file_name=path.name, mime="application/gzip", key=f"export-{item.id}")
            else:
                st.caption(f"{label} {plain(item.error)}")
