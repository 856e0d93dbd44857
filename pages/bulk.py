"""Bulk send: a wizard (audience, content, review, send) and the bulk jobs with live progress.

Admins send to any audience; front desk to a custom list of at most 20 (the service enforces
both). The wizard's inputs live in ``st.session_state`` so Back and Next never lose them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import streamlit as st

from app.bidi import direction_marks, marks_note
from app.errors import AppError
from app.services.bulk import audience as audiences
from app.services.bulk import jobs as bulk_jobs
from app.services.bulk import recipients as ri
from app.services.bulk import wizard as bulk_wizard
from app.services.bulk.wizard import Draft, DryRun
from app.services.permissions import Permission
from app.ui import cached, feedback, reports, rtl, session, times
from app.ui.text import as_text, counted, plain
from db.enums import BULK_JOB_MOVING, BulkJobStatus, Channel, Language, MessageClass

actor = session.require_actor(Permission.SEND_MESSAGES)
if not bulk_wizard.may_use(actor):
    st.error(f"Your role ({actor.role.label}) cannot send bulk messages.")
    st.stop()

STEPS = ("Audience", "Content", "Review", "Send")
W = "bulk_w_"  # widget keys kept across steps
STATE = "bulk.state"
OPEN_JOB = "bulk.open_job"
CHANNELS = [Channel.SMS, Channel.WHATSAPP, Channel.EMAIL]

for key in [k for k in st.session_state if str(k).startswith(W)]:
    st.session_state[key] = st.session_state[key]  # keep values of widgets not drawn in this step
state: dict = st.session_state.setdefault(STATE, {"step": 0, "key": bulk_wizard.new_draft_key()})


def go(step: int) -> None:
    state["step"] = step
    if step <= 2:
        state.pop("review", None)  # arriving at the review works it out afresh; sending uses that review
    st.rerun()


def current_draft() -> Draft:
    channel = st.session_state.get(W + "channel", Channel.SMS)
    kind = st.session_state.get(W + "kind", "list")
    audience: dict = {"kind": kind}
    if kind == "tags":
        audience |= {"any_of": st.session_state.get(W + "any_of", []), "all_of": st.session_state.get(W + "all_of", []),
                     "exclude": st.session_state.get(W + "exclude", [])}
    elif kind == "appointments":
        audience |= {"from": str(st.session_state.get(W + "from")), "to": str(st.session_state.get(W + "to"))}
    elif kind == "list":
        audience |= {"recipients": state.get("recipients", [])}
    use_template = st.session_state.get(W + "source", "Template") == "Template"
    template = st.session_state.get(W + "template") if use_template else None
    return Draft(
        idempotency_key=state["key"], audience=audience, channel=channel,
        template_id=uuid.UUID(str(template)) if template else None,
        body_en="" if use_template else st.session_state.get(W + "body_en", ""),
        body_ar="" if use_template else st.session_state.get(W + "body_ar", ""),
        message_class=st.session_state.get(W + "class", MessageClass.SERVICE),
        name=st.session_state.get(W + "name", ""),
        import_rejections=tuple(state.get("rejected", [])) if kind == "list" else (),
    )


# --- steps ------------------------------------------------------------------------------------


def audience_step(options: bulk_wizard.WizardOptions) -> None:
    st.radio("Who receives it", options.kinds, format_func=lambda k: audiences.KIND_LABELS[k], key=W + "kind")
    kind = st.session_state[W + "kind"]
    if kind == "tags":
        st.multiselect("Any of these tags", options.tags, key=W + "any_of")
        st.multiselect("All of these tags", options.tags, key=W + "all_of")
        st.multiselect("Except patients tagged", options.tags, key=W + "exclude")
    elif kind == "appointments":
        today = dt.datetime.now(ZoneInfo(options.timezone)).date()
        st.date_input("First day (clinic time)", value=today + dt.timedelta(days=1), key=W + "from")
        st.date_input("Last day", value=today + dt.timedelta(days=1), key=W + "to")
    elif kind == "list":
        list_inputs(options)


def list_inputs(options: bulk_wizard.WizardOptions) -> None:
    state["list_refusal"] = None
    if not actor.can(Permission.BULK_SEND):
        st.info(f"Front desk can send to a list of at most {bulk_wizard.FRONT_DESK_MAX_RECIPIENTS} recipients.")
    pasted = st.text_area("Paste numbers or addresses (one per line)", key=W + "pasted")
    upload = st.file_uploader("…or upload a CSV or Excel file", type=["csv", "txt", "xlsx"], key="bulk_upload")
    if upload is not None:
        source: tuple = ("upload", upload.file_id, options.max_upload_bytes)
        table = feedback.attempt_once(state, "table", source, lambda: ri.read_table(
            upload.name, upload.getvalue(), max_bytes=options.max_upload_bytes))
    elif pasted.strip():
        source = ("pasted", pasted)
        table = feedback.attempt_once(state, "table", source, lambda: ri.read_pasted(pasted))
    else:
        return
    if table is None:
        return
    guess = ri.guess_mapping(table, st.session_state.get(W + "channel", Channel.SMS))
    none = ["(none)", *table.columns]
    st.caption(f"{len(table.rows):,} rows read ({table.encoding}). Map the columns:")
    cols = st.columns(3)
    contact = cols[0].selectbox("Phone or e-mail column", table.columns, key=W + "map_contact",
                                index=table.columns.index(guess.contact) if guess.contact in table.columns else 0)
    name = cols[1].selectbox("Name column", none, key=W + "map_name",
                             index=none.index(guess.name) if guess.name else 0)
    language = cols[2].selectbox("Language column", none, key=W + "map_language",
                                 index=none.index(guess.language) if guess.language else 0)
    variables = st.multiselect("Columns that become template variables",
                               [c for c in table.columns if c not in (contact, name, language)],
                               default=[c for c in guess.variables if c not in (contact, name, language)],
                               key=W + "map_variables")
    mapping = ri.ColumnMapping(contact=contact, name=None if name == "(none)" else name,
                               language=None if language == "(none)" else language, variables=tuple(variables))
    channel = st.session_state.get(W + "channel")
    result = feedback.attempt_once(state, "import", (source, mapping, channel, options.region),
                                   lambda: ri.to_recipients(table, mapping, channel, options.region))
    if result is None:
        state["recipients"], state["rejected"] = [], []
        return
    state["recipients"], state["rejected"] = result.recipients, result.rejected
    state["list_refusal"] = bulk_wizard.list_too_long(actor, len(result.recipients))
    if state["list_refusal"]:  # refused before anything says the list is ready
        st.error(state["list_refusal"], icon=":material/block:")
    else:
        st.success(f"{counted(len(result.recipients), 'recipient')} ready; "
                   f"{counted(len(result.rejected), 'row')} refused.")
    if variables:
        st.caption("Variables from the file: " + ", ".join("{{ " + v + " }}" for v in ri.variable_names(mapping)))
    if result.rejected:
        st.dataframe([{"Row": r.row, "Value": r.recipient, "Reason": r.reason} for r in result.rejected[:1000]],
                     hide_index=True)


def content_step(options: bulk_wizard.WizardOptions) -> None:
    st.radio("Text", ["Template", "Custom text"], key=W + "source", horizontal=True)
    if st.session_state[W + "source"] == "Template":
        if not options.templates:
            st.warning("No active template for this channel. Write a custom text instead.")
            return
        labels = dict(options.templates)
        st.selectbox("Template", list(labels), format_func=lambda i: labels[i], key=W + "template")
    else:
        rtl.style_arabic_inputs()
        st.text_area("English text", key=W + "body_en", help="Variables such as {{ patient_name }} are filled in.")
        st.text_area("Arabic text (optional)", key=W + "body_ar")
        st.radio("Message class", list(MessageClass), format_func=lambda c: c.value.title(), key=W + "class",
                 horizontal=True)
    st.text_input("Name of this send (optional)", key=W + "name")


def show_review(review: DryRun) -> None:
    st.info(review.class_effect, icon=":material/info:")
    st.metric("Recipients in the audience", f"{review.audience_size:,}",
              help="Everyone this send considered, rows refused in the file included: will be sent + skipped.")
    cols = st.columns(4)
    cols[0].metric("Will be sent", f"{review.sendable:,}", help="Deferred ones included: they go out later.")
    cols[1].metric("Skipped", f"{review.skipped_count:,}", help="Not sent; the reasons are below.")
    cols[2].metric("Estimated cost", f"{review.estimated_cost:,.2f} {review.currency}")
    cols[3].metric("Takes about", _duration(review.duration_seconds))
    notes = [f"Of those sent, {review.deferred:,} wait for the end of the patient's quiet hours."] if \
        review.deferred else []
    if review.segments_total:
        notes.append(f"SMS parts: {review.segments_total:,}.")
    if notes:
        st.caption(" ".join(notes))
    will_send = [{"Channel and language": k, "Will be sent": v} for k, v in review.will_send.items()]
    st.dataframe(will_send, hide_index=True, column_config=reports.count_columns(will_send))
    for note in review.notes:
        st.warning(plain(note))
    for sample in review.samples:
        marks = f", {marks_note(direction_marks(sample.body))}" if direction_marks(sample.body) else ""
        st.markdown(f"**Sample in {sample.language.label}** — {counted(sample.segments, 'part')}, "
                    f"{sample.encoding}{marks}")
        if sample.language == Language.AR:
            rtl.show(sample.body)
        else:
            st.text(sample.body)
    if review.later:
        with st.expander(f"Sent later, after quiet hours: {review.deferred:,}"):
            st.dataframe([{"Row": _row(s.row), "Recipient": s.recipient, "Detail": s.detail}
                          for s in review.later[:2000]], hide_index=True)
    if review.skipped_count:
        st.subheader(f"Skipped: {review.skipped_count:,}, and why", anchor=False)
        st.caption(" · ".join(f"{plain(reason)}: {n:,}" for reason, n in review.skipped_by_reason.items()))
        st.dataframe([{"Row": _row(s.row), "Recipient": s.recipient, "Reason": s.reason, "Detail": s.detail}
                      for s in review.skipped[:2000]], hide_index=True)
        if st.button("Prepare the skipped list for download", key="bulk_prepare_csv"):
            state["skipped_csv"] = feedback.service(bulk_wizard.skipped_csv, review)
        if state.get("skipped_csv"):
            st.download_button("Download skipped list (CSV)", state["skipped_csv"], file_name="skipped.csv",
                               mime="text/csv", key="bulk_download_csv")


def _row(row: int | None) -> str:
    """A list's row number; a dash for a patient (no row)."""
    return "—" if row is None else str(row)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def send_step(options: bulk_wizard.WizardOptions, review: DryRun) -> None:
    st.radio("When", ["Send now", "Schedule"], key=W + "when", horizontal=True)
    send_at = None
    if st.session_state[W + "when"] == "Schedule":
        now = dt.datetime.now(ZoneInfo(options.timezone))
        day = st.date_input(f"Date ({options.timezone})", value=now.date(), key=W + "day")
        at = st.time_input("Time (clinic time)", value=(now + dt.timedelta(hours=1)).time().replace(
            second=0, microsecond=0), key=W + "time")
        send_at = dt.datetime.combine(day, at)
    typed = None
    skipped = f" ({review.skipped_count:,} of the {review.audience_size:,} in the audience are skipped)" if \
        review.skipped_count else ""
    st.markdown(f"**This sends {counted(review.sendable, 'message')}**{skipped}.")
    if review.needs_typed_count:
        text = st.text_input(f"Type {review.sendable} (the number of messages that will be sent) to confirm",
                             key=W + "typed")
        typed = int(text.replace(",", "")) if text.replace(",", "").strip().isdigit() else None
    if st.button("Send" if send_at is None else "Schedule send", type="primary", key="bulk_send"):
        created = feedback.service(bulk_wizard.confirm, current_draft(), typed_count=typed, send_at_local=send_at)
        if created is not None:  # the service asked the worker to prepare the messages
            for key in [k for k in st.session_state if str(k).startswith(W)]:
                del st.session_state[key]
            st.session_state[STATE] = {"step": 0, "key": bulk_wizard.new_draft_key()}
            st.session_state[OPEN_JOB] = str(created.bulk_job_id)
            feedback.flash("bulk", "Already submitted: showing that send." if created.duplicate else
                           "Sending has started." if created.scheduled_at is None else "The send is scheduled.")
            st.rerun()


def wizard() -> None:
    step = state["step"]
    st.caption(f"Step {step + 1} of {len(STEPS)}: {STEPS[step]}")
    st.progress((step + 1) / len(STEPS))
    st.selectbox("Channel", CHANNELS, format_func=lambda c: c.label, key=W + "channel", disabled=step > 0)
    options = feedback.service(bulk_wizard.options, st.session_state[W + "channel"])
    if options is None:
        st.stop()
    if step == 0:
        audience_step(options)
    elif step == 1:
        content_step(options)
    elif step == 2:
        if state.get("review") is None:  # not again on every click on this step (a big audience takes seconds)
            with st.spinner("Working out who will get it…"):
                state["review"] = feedback.service(bulk_wizard.dry_run, current_draft())
        review = state["review"]
        if review is not None:
            show_review(review)
    elif step == 3 and state.get("review") is not None:
        send_step(options, state["review"])
    back, forward = st.columns(2)
    if step > 0 and back.button("Back", key="bulk_back"):
        go(step - 1)
    blocked = (step == 2 and not state.get("review")) or (
        step == 0 and st.session_state.get(W + "kind") == "list" and bool(state.get("list_refusal")))
    if step < 3 and forward.button("Next", type="primary", key="bulk_next", disabled=blocked):
        go(step + 1)


# --- progress ---------------------------------------------------------------------------------


def progress_panel(job_id: str, status: BulkJobStatus) -> None:
    """A job still moving refreshes itself every few seconds (only this panel); an ended one is drawn once."""
    if status in BULK_JOB_MOVING:
        live_progress(job_id)
    else:
        draw_progress(job_id)


@st.fragment(run_every=dt.timedelta(seconds=3))
def live_progress(job_id: str) -> None:
    if draw_progress(job_id) not in BULK_JOB_MOVING:
        st.rerun()  # it has just ended: the whole tab shows it once, without a timer


def draw_progress(job_id: str) -> BulkJobStatus | None:
    progress = feedback.service(bulk_jobs.progress, uuid.UUID(job_id))
    if progress is None:
        return None
    job = progress.job
    st.markdown(f"**{plain(job.name)}** · {job.channel.label} · {plain(job.audience)} · **{job.status.label}**")
    if job.status == BulkJobStatus.EXPANDING:
        st.caption("Preparing the messages in the background…")
        if bulk_wizard.looks_stuck(job.created_at) and st.button("Start preparing again", key="bulk_restart"):
            feedback.service(bulk_wizard.start_expansion, job.id)  # harmless if it is already running
    if progress.preparing and job.status != BulkJobStatus.EXPANDING:
        st.caption(f"{progress.total:,} of about {progress.expected:,} recipients prepared so far; "
                   "the first ones are already being sent.")
    total = max(progress.expected if progress.preparing else progress.total, 1)
    for group, count in progress.counts.items():
        st.progress(count / total, text=f"{group.title()}: {count:,}")
    if progress.eta_seconds is not None:
        st.caption(f"About {_duration(progress.eta_seconds)} left at the configured rate.")
    st.markdown(f"[Open these messages in the explorer]({progress.explorer_url})")
    if actor.can(Permission.BULK_SEND) and job.status in BULK_JOB_MOVING:  # the buttons only while they can act
        cols = st.columns(3)
        if job.status in (BulkJobStatus.SENDING, BulkJobStatus.SCHEDULED) and cols[0].button(
                "Pause", key="bulk_pause"):
            feedback.service(bulk_jobs.pause, job.id)
            st.rerun(scope="fragment")
        if job.status == BulkJobStatus.PAUSED and cols[1].button("Resume", key="bulk_resume"):
            resume(job.id)
        if cols[2].button("Cancel what is not sent", key="bulk_cancel"):
            feedback.service(bulk_jobs.cancel, job.id)
            st.rerun()
    return job.status


def resume(job_id: uuid.UUID) -> None:
    feedback.service(bulk_jobs.resume, job_id)
    st.rerun(scope="fragment")


def jobs_list() -> None:
    jobs = feedback.service(bulk_jobs.list_jobs)
    if not jobs:
        st.caption("No bulk sends yet.")
        return
    clinic = feedback.attempt(lambda: cached.clinic(actor))
    zone = clinic.timezone if clinic is not None else "UTC"
    created = times.heading("Created", zone)
    rows = [{created: times.local(j.created_at, zone), "Name": j.name, "By": j.created_by,
             "Channel": j.channel.label, "Audience": j.audience, "Content": j.content,
             "Recipients": j.recipients, "Messages": j.written, "Refused": j.refused,
             "Status": j.status.label} for j in jobs]
    st.dataframe(rows, hide_index=True, column_config={**reports.count_columns(rows), created: times.column()})
    ids = [str(j.id) for j in jobs]
    if st.session_state.get(OPEN_JOB) not in ids:
        st.session_state[OPEN_JOB] = ids[0]
    labels = {str(j.id): f"{times.clinic_time(j.created_at, zone)} · {as_text(j.name)}" for j in jobs}
    chosen = st.selectbox("Progress of", ids, format_func=lambda i: labels[i], key=OPEN_JOB)
    progress_panel(chosen, next(j.status for j in jobs if str(j.id) == chosen))


st.title("Bulk send", anchor=False)
feedback.show_flash("bulk")
new_tab, jobs_tab = st.tabs(["New send", "Bulk jobs"], key="bulk_tab", on_change="rerun")  # kept across reruns
with new_tab:
    try:
        wizard()
    except AppError as err:
        st.error(as_text(err))
with jobs_tab:
    jobs_list()
