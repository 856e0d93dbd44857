"""Reminders (admins): the rules that remind patients of their appointments, the clinic's sending
calendar (working week, hours, Ramadan hours, public holidays, closed days), and the coming schedule
with a preview of exactly what any reminder will say."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

import streamlit as st

from app.services.permissions import Permission
from app.services.reminders import dispatch, rules, schedule
from app.services.reminders.rules import CalendarSettings, RuleInput, RuleView
from app.services.reminders.schedule import ScheduleCursor
from app.ui import cached, feedback, rtl, session, times
from app.ui.feedback import form_key
from app.ui.text import as_text, counted, plain
from db.enums import Channel, ReminderShift

actor = session.require_actor(Permission.MANAGE_REMINDERS)
SCHEDULE_PAGES = "reminders.schedule_pages"  # the cursors of the schedule's pages seen, per number of days
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NEW = "new"

st.title("Reminders", anchor=False)
st.caption("Each rule sends one reminder before every upcoming appointment it covers, at a time the clinic's "
           "calendar allows. A reschedule moves the reminders not sent yet, a cancellation cancels them, and a "
           "reminder is never sent twice, late, or for a past or cancelled appointment. Every change is recorded "
           "in the audit log.")
clinic = feedback.attempt(lambda: cached.clinic(actor))
if clinic is None:
    st.stop()
zone = ZoneInfo(clinic.timezone)


def saved(slot: str, message: str, form: str) -> None:
    """After a save: keep the message and draw ``form`` as new, from what was saved."""
    feedback.flash(slot, message)
    feedback.new_form(form)
    st.session_state.pop(SCHEDULE_PAGES, None)
    st.rerun()


# -- rules ---------------------------------------------------------------------------------------


def rules_tab() -> None:
    feedback.show_flash("rules")
    found = feedback.service(rules.list_rules)
    options = feedback.service(rules.rule_options)
    if found is None or options is None:
        return
    if found:
        st.dataframe([{"Rule": as_text(r.name), "On": "yes" if r.is_active else "no", "Channel": r.channel.label,
                       "When": r.offset_text,
                       "Outside sending times": "exact time (urgent)" if r.urgent else r.shift.label,
                       "Fallback": r.fallback_channel.label if r.fallback_channel else "—",
                       "Covers": as_text(covers(r)), "Template": as_text(r.template_label)} for r in found],
                     hide_index=True, width="stretch")  # the long template names last: the rest fits 1,400 px
    else:
        st.info("No rules yet: add one below, e.g. WhatsApp 48 hours before and SMS 3 hours before.",
                icon=":material/alarm_add:")
    by_id = {str(r.id): r for r in found}
    chosen_key = st.selectbox("Rule", [NEW, *by_id], key=form_key("rules", "rule_choice"),
                              format_func=lambda k: "New rule" if k == NEW else as_text(by_id[k].name))
    rule_form(by_id.get(chosen_key), options, chosen_key)


def covers(rule: RuleView) -> str:
    parts = [f"types: {', '.join(rule.appointment_types)}"] if rule.appointment_types else []
    parts += [f"departments: {', '.join(rule.departments)}"] if rule.departments else []
    return "; ".join(parts) or "all appointments"


def rule_form(chosen: RuleView | None, options: rules.RuleOptions, key: str) -> None:
    def widget(name: str) -> str:
        return form_key("rules", f"rule_{name}_{key}")

    current = chosen.as_input() if chosen else RuleInput(name="", channel=Channel.WHATSAPP, template_id=None,
                                                         offset_minutes=24 * 60)
    channels = [Channel.WHATSAPP, Channel.SMS, Channel.EMAIL]
    channel = st.selectbox("Channel", channels, index=channels.index(current.channel), key=widget("channel"),
                           format_func=lambda c: c.label,
                           help="WhatsApp needs a template approved by WhatsApp (most patients are outside their "
                                "24-hour window). Saudi SMS is one-way: patients answer on WhatsApp.")
    templates = dict(options.templates[channel])
    replies = {**dict(options.templates[Channel.WHATSAPP]), **dict(options.templates[Channel.SMS])}
    with st.form(f"rule_form_{key}"):
        name = st.text_input("Name", value=current.name, max_chars=rules.MAX_NAME_CHARS, key=widget("name"),
                             placeholder="WhatsApp 48 h before")
        template_id = st.selectbox("Template", list(templates), key=widget("template"),
                                   index=list(templates).index(current.template_id)
                                   if current.template_id in templates else None,
                                   format_func=lambda t: as_text(templates[t]), placeholder="Choose a template")
        left, middle, right = st.columns(3)
        hours = left.number_input("Hours before", min_value=0, max_value=720, step=1, key=widget("hours"),
                                  value=current.offset_minutes // 60)
        minutes = middle.number_input("and minutes", min_value=0, max_value=59, step=5, key=widget("minutes"),
                                      value=current.offset_minutes % 60)
        fallbacks = [None, *[c for c in (Channel.SMS, Channel.EMAIL) if c != channel]]
        fallback = right.selectbox("Fallback channel", fallbacks, key=widget("fallback"),
                                   index=fallbacks.index(current.fallback_channel)
                                   if current.fallback_channel in fallbacks else 0,
                                   format_func=lambda c: c.label if c else "No fallback",
                                   help="Used when the patient has no contact for the channel or opted out of it; "
                                        "a WhatsApp reminder that fails for good goes again by SMS.")
        shift = st.radio("When its time is outside the sending hours, on a weekend or a holiday",
                         list(ReminderShift), index=list(ReminderShift).index(current.shift), horizontal=True,
                         format_func=lambda s: s.label, key=widget("shift"))
        urgent = st.checkbox("Urgent: at its exact time, whatever the calendar and the patient's quiet hours",
                             value=current.urgent, key=widget("urgent"))
        left, right = st.columns(2)
        types = left.multiselect("Appointment types (none: all)", sorted({*options.appointment_types,
                                                                         *current.appointment_types}),
                                 default=list(current.appointment_types), accept_new_options=True,
                                 key=widget("types"), format_func=as_text)
        departments = right.multiselect("Departments (none: all)", sorted({*options.departments,
                                                                          *current.departments}),
                                        default=list(current.departments), accept_new_options=True,
                                        key=widget("departments"), format_func=as_text)
        acks = [None, *replies]
        confirm_ack = left.selectbox("Answer to a confirmation", acks, key=widget("confirm_ack"),
                                     index=acks.index(current.confirm_ack_template_id)
                                     if current.confirm_ack_template_id in acks else 0,
                                     format_func=lambda t: as_text(replies[t]) if t else "No answer")
        cancel_ack = right.selectbox("Answer to a cancellation", acks, key=widget("cancel_ack"),
                                     index=acks.index(current.cancel_ack_template_id)
                                     if current.cancel_ack_template_id in acks else 0,
                                     format_func=lambda t: as_text(replies[t]) if t else "No answer")
        active = st.checkbox("On", value=current.is_active, key=widget("active"))
        submitted = st.form_submit_button("Save rule", type="primary")
    if submitted:
        data = RuleInput(name=name, channel=channel, template_id=template_id, offset_minutes=int(hours) * 60
                         + int(minutes), shift=shift, fallback_channel=fallback, urgent=urgent,
                         appointment_types=tuple(types), departments=tuple(departments),
                         confirm_ack_template_id=confirm_ack, cancel_ack_template_id=cancel_ack, is_active=active)
        result = (feedback.service(rules.update_rule, chosen.id, data) if chosen
                  else feedback.service(rules.create_rule, data))
        if result is not None:
            saved("rules", f"Saved the rule '{plain(result.name)}'; the reminders not sent yet follow it.", "rules")


# -- the calendar --------------------------------------------------------------------------------


def calendar_tab() -> None:
    feedback.show_flash("calendar")
    view = feedback.service(rules.get_calendar)
    if view is None:
        return
    current = view.settings

    def widget(name: str) -> str:
        return form_key("calendar", f"cal_{name}")

    st.caption(f"Clinic time ({plain(times.zone_name(zone))}), public holidays of region {plain(view.region)}."
               + (" These are the defaults for a Saudi clinic; save to keep your own." if view.is_default else ""))
    with st.form("calendar"):
        weekend = st.multiselect("Weekend", list(range(7)), default=list(current.weekend_days),
                                 format_func=lambda d: WEEKDAYS[d], key=widget("weekend"))
        left, right = st.columns(2)
        send_start = left.time_input("Reminders from", value=current.send_start, step=900, key=widget("send_start"))
        send_end = right.time_input("until (not including)", value=current.send_end, step=900, key=widget("send_end"))
        ramadan_start = left.time_input("In Ramadan from", value=current.ramadan_start, step=900,
                                        key=widget("ramadan_start"))
        ramadan_end = right.time_input("until (not including)", value=current.ramadan_end, step=900,
                                       key=widget("ramadan_end"))
        holidays_on = st.checkbox("No reminders on public holidays", value=current.public_holidays,
                                  key=widget("holidays"))
        closed = st.text_area("Closed days (one date a line, e.g. 2026-12-24)",
                              value="\n".join(d.isoformat() for d in current.closed_dates), key=widget("closed"))
        submitted = st.form_submit_button("Save calendar", type="primary")
    if submitted:
        days = feedback.attempt(lambda: rules.parse_dates(closed))
        if days is not None and feedback.service(rules.set_calendar, CalendarSettings(
                tuple(weekend), send_start, send_end, ramadan_start, ramadan_end, holidays_on, days)):
            saved("calendar", "Saved the calendar; the reminders not sent yet were moved to fit it.", "calendar")
    if view.next_ramadan:
        first, last = view.next_ramadan
        st.caption(f"Ramadan (Umm al-Qura): {first.day} {first:%b %Y} to {last.day} {last:%b %Y}.")
    st.subheader("Public holidays of the coming year", anchor=False)
    st.caption("From the holidays library; Saudi Eid dates follow the Umm al-Qura calendar and may still move by a "
               "day when the moon is sighted. Add such a day as a closed day.")
    if view.coming_holidays:
        st.dataframe([{"Date": day, "Day": WEEKDAYS[day.weekday()], "Holiday": as_text(name)}
                      for day, name in view.coming_holidays], hide_index=True, width="stretch", height="content",
                     column_config={"Date": st.column_config.DateColumn(format="D MMM YYYY")})  # a year's: all shown
    else:
        st.caption("The library knows no public holidays for this region.")


# -- the schedule --------------------------------------------------------------------------------


def schedule_tab() -> None:
    days = st.selectbox("Reminders due in the next", [1, 7, 14, 30], index=1, key="schedule_days",
                        format_func=lambda d: counted(d, "day"))
    pages: dict = st.session_state.setdefault(SCHEDULE_PAGES, {})
    cursors: list[ScheduleCursor | None] = pages.setdefault(days, [None])
    page = feedback.service(schedule.upcoming, days=days, after=cursors[-1])
    if page is None:
        return
    if not page.reminders:
        st.info("No reminders waiting in these days." if len(cursors) == 1 else "No more reminders.",
                icon=":material/alarm_off:")
        return
    due, starts = times.heading("Due", zone), times.heading("Appointment", zone)
    st.dataframe([{due: times.local(r.due_at, zone), starts: times.local(r.appointment_starts_at, zone),
                   "Patient": as_text(r.patient_name), "Rule": as_text(r.rule_name), "Channel": r.channel.label,
                   "Moved because": as_text(r.moved_reason) or "—"} for r in page.reminders],
                 hide_index=True, width="stretch", column_config={due: times.column(), starts: times.column()})
    back, forward = st.columns(2)
    if len(cursors) > 1 and back.button("Earlier page", key="schedule_back"):
        cursors.pop()
        st.rerun()
    if page.next_cursor is not None and forward.button("Next page", key="schedule_next"):
        cursors.append(page.next_cursor)
        st.rerun()
    by_id = {str(r.id): r for r in page.reminders}
    chosen = st.selectbox("Preview a reminder", list(by_id), index=None, key="schedule_preview",
                          placeholder="Choose one to see exactly what it will say",
                          format_func=lambda k: as_text(f"{times.clinic_time(by_id[k].due_at, zone, label=False)} · "
                                                        f"{by_id[k].patient_name} · {by_id[k].rule_name}"))
    if chosen is not None:
        show_preview(chosen)


def show_preview(reminder_id: str) -> None:
    shown = feedback.service(dispatch.preview, uuid.UUID(reminder_id))
    if shown is None:
        return
    st.caption(f"{shown.channel.label} to {plain(shown.recipient or '—')} · "
               f"{'Arabic' if shown.language.value == 'ar' else 'English'} · due "
               f"{times.clinic_time(shown.due_at, zone)}")
    if shown.problem:
        st.warning(plain(shown.problem), icon=":material/warning:")
    if shown.note:
        st.caption(plain(shown.note))
    if shown.subject:
        st.markdown(f"**Subject:** {plain(shown.subject)}")
    if shown.body:
        with st.container(border=True):
            rtl.show_text(shown.body)


rules_view, calendar_view, schedule_view = st.tabs(["Rules", "Calendar", "Schedule"], key="reminders_tab",
                                                   on_change="rerun")  # only the open one runs
if rules_view.open:
    with rules_view:
        rules_tab()
if calendar_view.open:
    with calendar_view:
        calendar_tab()
if schedule_view.open:
    with schedule_view:
        schedule_tab()
