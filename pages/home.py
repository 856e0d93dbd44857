"""Dashboard: how the clinic's messages are doing, live; and the emergency stop."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app.analytics import charts
from app.config import get_settings
from app.services import messaging
from app.services.permissions import Permission
from app.ui import cached, feedback, reports, session
from app.ui.text import plain

actor = session.require_actor()

st.title("Dashboard", anchor=False)
st.markdown(
    f"Signed in as **{plain(actor.display_name)}** ({plain(actor.username)}), "
    f"{actor.role.label}, at **{plain(actor.tenant_name)}**."
)

paused = feedback.service(messaging.is_paused)
if paused:
    st.error(
        "Sending is paused for this clinic. New and waiting messages are kept and nothing is sent "
        "until an admin resumes sending.",
        icon=":material/pause_circle:",
    )
feedback.show_flash("sending")
if actor.can(Permission.PAUSE_SENDING):
    with st.expander("Emergency stop: pause all sending", icon=":material/emergency:", expanded=bool(paused)):
        if paused:
            if st.button("Resume sending", type="primary", icon=":material/play_arrow:"):
                waiting = feedback.service(messaging.resume_sending)
                if waiting is not None:
                    feedback.flash("sending", f"Sending resumed; {waiting:,} waiting messages are on their way.")
                    st.rerun()
        else:
            st.write("Use this if a wrong message is going out. Messages not yet sent wait; nothing is lost.")
            reason = st.text_input("Reason (kept in the audit log)", key="pause_reason", max_chars=500)
            sure = st.checkbox("I want to stop all sending for the whole clinic now", key="pause_confirm")
            if st.button("Pause all sending", type="primary", icon=":material/pause:", disabled=not sure):
                if feedback.service(messaging.pause_sending, reason=reason):
                    feedback.flash("sending", "All sending is paused.")
                    st.rerun()

clinic = feedback.attempt(lambda: cached.clinic(actor))
choice = reports.period_choice(actor, "dashboard")
if clinic is None or choice is None:
    st.stop()
zone = clinic.timezone
st.caption(f"Days and times are in the clinic's time zone, {zone}.")


# The live panels rerun on their own, alone: each run takes the period anew, so the window slides.
@st.fragment(run_every=get_settings().dashboard_refresh_seconds)
def live_numbers() -> None:
    period = choice.at(dt.datetime.now(dt.UTC))
    result = reports.summary(actor, period)
    if result is None:
        return
    totals = result.totals
    tiles = st.columns(6)
    tiles[0].metric("Messages", f"{totals.messages:,}", border=True)
    tiles[1].metric("Delivered", f"{totals.delivered:,}", border=True)
    tiles[2].metric("Failed", f"{totals.failed:,}", border=True)
    tiles[3].metric("In progress", f"{totals.in_progress:,}", border=True,
                    help="Scheduled, queued, being sent, sent and waiting for the delivery report, or unknown "
                         "(being checked with the provider).")
    tiles[4].metric("Success rate", reports.percent(totals.success_rate), border=True,
                    help="Delivered out of the messages that were delivered or failed. Test messages are not "
                         "counted.")
    tiles[5].metric("Cost", f"{totals.cost:,.2f}", border=True, help="As priced by the providers.")
    left, right = st.columns([1, 2])
    with left:  # three numbers read better as numbers than as a chart (Analytics has the chart and its CSV)
        st.markdown("**Messages by channel**")
        for row in result.channels.itertuples(index=False):
            st.metric(str(row.Channel), f"{int(row.Messages):,}", border=True)
        if result.channels.empty:
            st.caption("No messages in this period.")
    with right:
        reports.chart(actor, charts.daily_trend, result.daily, "daily_trend", period)
    st.caption(f"Updated {reports.clock(zone)}; refreshes on its own.")


@st.fragment(run_every=get_settings().dashboard_refresh_seconds)
def live_activity() -> None:
    period = choice.at(dt.datetime.now(dt.UTC))
    recent, failures = st.columns([3, 2])
    with recent:
        st.subheader("Recent messages", anchor=False)
        table = reports.recent_messages(actor)
        if table is not None:
            st.dataframe(table, hide_index=True, key="recent_messages",
                         column_config=reports.recent_messages_columns(zone))
    with failures:
        st.subheader("Recent failures", anchor=False)
        reasons = reports.failure_reasons(actor, period)
        if reasons is not None and reasons.empty:
            st.caption("No failed messages in this period.")
        elif reasons is not None:  # a short list: the count first, the action in full, whatever the width
            for row in reasons.to_dict("records"):
                st.markdown(f"**{int(row['Messages']):,}** · {plain(row['Reason'])}  \n"
                            f":gray[{plain(row['Suggested action'])}]")
    st.subheader("Bulk jobs in progress", anchor=False)
    jobs = reports.bulk_jobs_in_progress(actor)
    if jobs is not None and jobs.empty:
        st.caption("No bulk job is being prepared, sending, paused or waiting for its time right now.")
    elif jobs is not None:
        st.dataframe(jobs, hide_index=True, key="bulk_jobs",
                     column_config={**reports.count_columns(jobs), "Created": reports.created_column(zone)})


live_numbers()
live_activity()
