"""Analytics: delivery, channels, templates, failures, cost, engagement, timing, opt-outs, bulk jobs,
reminders and replies."""

from __future__ import annotations

import streamlit as st

from app.analytics import charts
from app.analytics.store import Filters
from app.services import analytics
from app.services.permissions import Permission
from app.ui import feedback, reports, session
from app.ui.text import as_text
from db.enums import Channel

actor = session.require_actor(Permission.VIEW_ANALYTICS)
TABS = ["Delivery", "Channels", "Templates", "Failures", "Cost", "WhatsApp reads", "Weekday x hour", "Opt-outs",
        "Bulk jobs", "Reminders and replies"]
st.title("Analytics", anchor=False)

period = reports.period_picker(actor, "analytics")
templates = feedback.service(analytics.template_choices) or {}
pick_channel, pick_template = st.columns(2)
channel = pick_channel.selectbox("Channel", [None, *Channel], format_func=lambda c: c.label if c else "All channels",
                                 key="analytics_channel")
template_id = pick_template.selectbox("Template", [None, *templates], key="analytics_template",
                                      format_func=lambda t: as_text(templates.get(t, "All templates")) if t
                                      else "All templates")
if period is None:
    st.stop()
report = reports.report(actor, period, Filters(channel=channel, template_id=template_id))
if report is None:
    st.stop()


def show(build, data, name: str, empty: str | None = None) -> None:  # type: ignore[no-untyped-def]
    reports.chart(actor, build, data, name, period, empty=empty)


def by_rate(data):  # type: ignore[no-untyped-def]
    return charts.top_templates(data, by="Success rate (%)")


def by_success(data):  # type: ignore[no-untyped-def]
    return charts.send_heatmap(data, value="Success rate (%)")


def reminders_and_replies() -> None:
    results = reports.reminder_results(actor, period)
    if results is None:
        return
    st.caption("Appointments are counted by the day they start, replies by the day they came in (clinic time). "
               "The channel and template filters do not apply here.")
    totals = results.totals
    rate, cancelled, reply_time, waiting = st.columns(4)
    rate.metric("Confirmed by reply", reports.percent(totals.confirmation_rate),
                help=f"{totals.confirmed} of {totals.reminded} reminded appointments")
    cancelled.metric("Cancelled by reply", totals.cancelled_by_reply,
                     help=f"{totals.hours_freed:g} hours freed in all; median "
                          f"{reports.amount(totals.median_hours_freed, 'h')} before the appointment")
    reply_time.metric("Front desk reply time (median)", reports.amount(totals.median_reply_minutes, "min"),
                      help=f"90th percentile {reports.amount(totals.p90_reply_minutes, 'min')}, "
                           f"over {totals.answered} answered")
    waiting.metric("Replies still waiting", totals.still_waiting)
    who = "set up rules" if actor.can(Permission.MANAGE_REMINDERS) else "an admin sets up rules"
    show(charts.confirmation_rate, results.confirmations, "reminder_confirmation_rate",
         f"No reminders sent for appointments in this period: {who} on the Reminders page.")
    show(charts.cancellations_by_reply, results.cancellations, "cancellations_by_reply",
         "No appointment in this period was cancelled by a patient's reply.")
    show(charts.no_shows_by_reminder, results.no_shows, "no_shows_by_reminder",
         "No appointment in this period has its attendance recorded yet (completed or no-show, from the "
         "clinic's system).")
    if not results.no_shows.empty:
        st.dataframe(results.no_shows, hide_index=True, key="no_shows_table",
                     column_config=reports.count_columns(results.no_shows))
    show(charts.reply_time, results.reply_times, "front_desk_reply_time",
         "No replies went to the front desk in this period.")
    show(charts.replies_by_intent, results.intents, "replies_by_intent", "No replies from patients in this period.")


# Only the open tab is drawn (a tab's charts are built in the browser only when it is chosen).
tabs = dict(zip(TABS, st.tabs(TABS, key="analytics_tab", on_change="rerun"), strict=True))
open_tab = next((name for name, tab in tabs.items() if tab.open), TABS[0])
with tabs[open_tab]:
    if open_tab == "Delivery":
        show(charts.delivery_rate_over_time, report.delivery_rate, "delivery_rate")
    elif open_tab == "Channels":
        show(charts.channel_comparison, report.channels, "channel_comparison")
        if not report.channels.empty:
            st.dataframe(report.channels, hide_index=True, key="channels_table",
                         column_config=reports.count_columns(report.channels))
    elif open_tab == "Templates":
        show(charts.top_templates, report.templates, "templates_by_volume")
        show(by_rate, report.templates, "templates_by_success_rate")
    elif open_tab == "Failures":
        show(charts.failure_pareto, report.failures, "failure_reasons")
        if not report.failures.empty:
            st.dataframe(report.failures, hide_index=True, key="failures_table",
                         column_config=reports.count_columns(report.failures))
    elif open_tab == "Cost":
        show(charts.cost_per_day, report.cost_daily, "cost_per_day")
        show(charts.cost_per_template, report.templates, "cost_per_template")
    elif open_tab == "WhatsApp reads":
        show(charts.whatsapp_read_rate, report.whatsapp_reads, "whatsapp_read_rate")
    elif open_tab == "Weekday x hour":
        show(charts.send_heatmap, report.heatmap, "sends_by_weekday_and_hour")
        show(by_success, report.heatmap, "success_by_weekday_and_hour")
    elif open_tab == "Opt-outs":
        show(charts.optout_trend, report.optouts, "opt_outs")
    elif open_tab == "Reminders and replies":
        reminders_and_replies()
    else:
        show(charts.bulk_outcomes, report.bulk_jobs, "bulk_job_outcomes")
