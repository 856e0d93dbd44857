"""UI glue for the Inbox page: the filter, the table of threads, one thread's timeline and the answer form.

Stored text (names, replies, messages, outcomes) is shown as text: replies in their own direction
(Arabic right to left and right-aligned, ``rtl.show_text``), everything else through ``plain`` /
``as_text``. Times are the clinic's, labelled with its zone (``times``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app.services import inbox
from app.services.inbox import (
    Assigned,
    Direction,
    ReplyOptions,
    StateFilter,
    ThreadCursor,
    ThreadRow,
    ThreadView,
    TimelineItem,
    Waiting,
)
from app.ui import explorer, feedback, rtl, times
from app.ui.templates.display import show_check, show_ltr
from app.ui.text import as_text, plain
from db.enums import Channel, ConversationState, Language, ReplyIntent

FILTER_KEY = "inbox.filter"
PAGES_KEY = "inbox.pages"  # the cursors of the pages before this one, and this one's
TABLE_KEY = "inbox.table"  # a number in the table's key: a new number clears its selection
OWN_TEXT, TEMPLATE = "text", "template"
# How the service names a message no staff member wrote (``inbox.reading``), in words
SENT_BY = {"Automatic": "sent automatically", "Bulk send": "from a bulk send"}


@dataclass(frozen=True)
class InboxFilter:
    state: StateFilter = StateFilter.OPEN
    intents: tuple[ReplyIntent, ...] = ()
    age: Waiting | None = None
    assigned: Assigned = Assigned.ANYONE
    unread_only: bool = False

    def arguments(self) -> dict[str, Any]:
        """What ``inbox.threads`` takes."""
        return {"state": self.state, "intents": list(self.intents), "age": self.age, "assigned": self.assigned,
                "unread_only": self.unread_only}


def current_filter() -> InboxFilter:
    return st.session_state.get(FILTER_KEY) or InboxFilter()


def filter_form() -> InboxFilter:
    """The filter boxes; a new filter starts again at the first page."""
    chosen = current_filter()
    with st.form("inbox-filters", border=True):
        left, middle, right = st.columns(3)
        state = left.selectbox("State", list(StateFilter), index=list(StateFilter).index(chosen.state),
                               format_func=lambda s: StateFilter(s).label)
        assigned = left.selectbox("Assigned to", list(Assigned), index=list(Assigned).index(chosen.assigned),
                                  format_func=lambda a: Assigned(a).label)
        intents = middle.multiselect("What the patient asked", list(ReplyIntent), default=list(chosen.intents),
                                     format_func=lambda i: ReplyIntent(i).label,
                                     help="The intent of each thread's last reply.")
        ages: list[Waiting | None] = [None, *Waiting]
        age = right.selectbox("Waiting for an answer", ages, index=ages.index(chosen.age),
                              format_func=lambda a: "Any time" if a is None else Waiting(a).label,
                              help="How long the oldest unanswered reply has waited. Answered threads wait for nobody.")
        unread_only = right.checkbox("Unread only", value=chosen.unread_only)
        if st.form_submit_button("Apply filters", type="primary", icon=":material/filter_alt:"):
            chosen = InboxFilter(state=state, intents=tuple(intents), age=age, assigned=assigned,
                                 unread_only=unread_only)
            st.session_state[FILTER_KEY] = chosen
            st.session_state[PAGES_KEY] = []
    return chosen


def page_cursor() -> ThreadCursor | None:
    pages = st.session_state.get(PAGES_KEY) or []
    return pages[-1] if pages else None


def paging(next_cursor: ThreadCursor | None) -> None:
    """First page / next page buttons (keyset: each page starts after the last thread shown)."""
    pages: list[ThreadCursor] = st.session_state.setdefault(PAGES_KEY, [])
    first, following = st.columns(2)
    if first.button("First page", icon=":material/first_page:", disabled=not pages):
        st.session_state[PAGES_KEY] = []
        st.rerun()
    if following.button("Next page", icon=":material/chevron_right:", disabled=next_cursor is None):
        pages.append(next_cursor)
        st.rerun()


def table_rows(rows: list[ThreadRow], zone: ZoneInfo) -> list[dict[str, Any]]:
    # What the front desk works by first: at 1,400 px the last two columns need a sideways scroll.
    return [{
        "Unread": f"● {row.unread}" if row.unread else "",
        "Patient": as_text(row.name),
        "Last reply": as_text(row.snippet),
        "Asked": row.intent.label if row.intent else "",
        # as text: a dash for an answered thread (a time column would show an empty time as "None")
        times.heading("Waiting since", zone): times.clinic_time(row.waiting_since, zone, label=False),
        "Assigned to": as_text(row.assigned_to) or "Nobody",
        "State": "Done" if row.state == ConversationState.DONE else "Open",
        times.heading("Last reply at", zone): times.local(row.last_inbound_at, zone),
        "Number": as_text(row.contact),
    } for row in rows]


def table(rows: list[ThreadRow], zone: ZoneInfo, *parts: object) -> uuid.UUID | None:
    """The threads as a table; the thread of the row just clicked (once per click), or None."""
    key = f"inbox-table-{st.session_state.get(TABLE_KEY, 0)}-" + "-".join(map(str, parts))
    clicked = st.dataframe(
        table_rows(rows, zone), hide_index=True, width="stretch", key=key, on_select="rerun",
        selection_mode=["single-row", "single-cell"],
        column_config={"Last reply": st.column_config.TextColumn(width=240),  # the whole reply is in the thread
                       times.heading("Last reply at", zone): times.column()})
    return explorer.clicked_message(clicked, rows, key)  # type: ignore[arg-type]  # any rows with an id


def thread_from_url() -> uuid.UUID | None:
    try:
        return uuid.UUID(st.query_params.get("thread", ""))
    except ValueError:
        return None


def open_thread(thread_id: uuid.UUID) -> None:
    """Open the thread clicked, and draw the table afresh without a selection: the list may change
    (a thread marked done leaves it), and a selection kept by row number would then mark another
    patient's row and swallow the next click on whichever thread moved into that row."""
    st.query_params["thread"] = str(thread_id)
    st.session_state[TABLE_KEY] = st.session_state.get(TABLE_KEY, 0) + 1


def close_thread() -> None:
    st.query_params.pop("thread", None)
    st.session_state[TABLE_KEY] = st.session_state.get(TABLE_KEY, 0) + 1


# -- one thread ------------------------------------------------------------------------------------


def heading(view: ThreadView, zone: ZoneInfo) -> None:
    st.subheader(f"{plain(view.name)} · {plain(view.contact)}", anchor=False)
    facts = ["Done" if view.state == ConversationState.DONE else "Open",
             f"assigned to {plain(view.assigned_to)}" if view.assigned_to else "assigned to nobody",
             f"waiting since {times.clinic_time(view.waiting_since, zone)}" if view.waiting_since
             else "nobody is waiting for an answer"]
    st.caption(" · ".join(facts))
    if view.truncated:
        st.caption(f"Showing the newest {inbox.TIMELINE_LIMIT} replies and messages.")


def _item_facts(item: TimelineItem, zone: ZoneInfo) -> str:
    facts = [times.clinic_time(item.at, zone), item.channel.label]
    if item.direction == Direction.INBOUND:
        facts.append(f"asked: {item.intent.label}" if item.intent else "asked: not understood")
        if item.outcome:
            facts.append(plain(item.outcome))
        if item.was_unread:
            facts.append("new")
    else:
        facts.append(explorer.STATUS_BADGES[item.status] if item.status else "")
        facts.append(SENT_BY.get(item.by) or f"by {plain(item.by)}")
    return " · ".join(fact for fact in facts if fact)


def timeline(view: ThreadView, zone: ZoneInfo) -> None:
    """The patient's replies and the clinic's messages, oldest first, each in its own direction."""
    if not view.items:
        st.caption("Nothing in this thread yet.")
    for item in view.items:
        inbound = item.direction == Direction.INBOUND
        with st.chat_message("user" if inbound else "assistant",
                             avatar=":material/person:" if inbound else ":material/local_hospital:"):
            st.caption(_item_facts(item, zone))
            if item.button_text:
                st.caption(f"Tapped the button “{plain(item.button_text)}”")
            if item.language == Language.AR or rtl.is_arabic(item.text):
                rtl.show(item.text)
            else:
                show_ltr(item.text)


def actions(view: ThreadView) -> None:
    """Assign, mark done or reopen (each a change: audited by the service)."""
    staff = feedback.service(inbox.assignable_staff) or []
    choices: list[uuid.UUID | None] = [None, *(s.id for s in staff)]
    names = {s.id: s.name for s in staff}
    if view.assigned_to_id is not None and view.assigned_to_id not in names:
        choices.append(view.assigned_to_id)
        names[view.assigned_to_id] = view.assigned_to
    who_column, assign_column, state_column = st.columns([2, 1, 1], vertical_alignment="bottom")
    chosen = who_column.selectbox("Assign to", choices, index=choices.index(view.assigned_to_id),
                                  format_func=lambda i: "Nobody" if i is None else as_text(names[i]),
                                  key=f"inbox-assign-{view.id}")
    if assign_column.button("Assign", icon=":material/person_add:", key=f"inbox-assign-button-{view.id}",
                            disabled=chosen == view.assigned_to_id):
        if feedback.service(inbox.assign, view.id, chosen) is not None:
            feedback.flash("inbox", f"Assigned to {plain(names[chosen])}." if chosen else "Nobody is assigned now.")
            st.rerun()
    if view.state == ConversationState.OPEN:
        if state_column.button("Mark done", icon=":material/done_all:", key=f"inbox-done-{view.id}"):
            if feedback.service(inbox.mark_done, view.id) is not None:
                feedback.flash("inbox", "Marked done. A new reply from the patient opens it again.")
                st.rerun()
    elif state_column.button("Reopen", icon=":material/undo:", key=f"inbox-reopen-{view.id}"):
        if feedback.service(inbox.reopen, view.id) is not None:
            feedback.flash("inbox", "Reopened.")
            st.rerun()


# -- the answer ------------------------------------------------------------------------------------


def _rule(options: ReplyOptions, zone: ZoneInfo) -> None:
    if options.channel != Channel.WHATSAPP:
        return
    if options.free_text:
        st.caption(f"Free text can be sent until {times.clinic_time(options.window_ends_at, zone)}. "
                   f"{plain(options.rule)}")
    else:
        closed = (f" The 24 hours ended {times.clinic_time(options.window_ends_at, zone)}."
                  if options.window_ends_at else "")
        st.info(f"{plain(options.rule)}{closed}", icon=":material/schedule:")


def answer_form(thread_id: uuid.UUID, zone: ZoneInfo) -> None:
    """The answer: free text inside the channel's rule, else a template; its preview; the send (once per form)."""
    options = feedback.service(inbox.reply_options, thread_id)
    if options is None:
        return
    prefix = f"inbox-answer-{thread_id}"  # the form: each answer sent makes it a new one (an empty box, a new key)
    st.markdown(f"**Answer on {options.channel.label}** to {plain(options.recipient)}")
    _rule(options, zone)
    kinds = [OWN_TEXT, TEMPLATE] if options.free_text else [TEMPLATE]
    kind = st.radio("Answer with", kinds, horizontal=True, key=f"{prefix}-kind",
                    format_func={OWN_TEXT: "My own text", TEMPLATE: "A template"}.__getitem__)
    text = template_code = None
    if kind == OWN_TEXT:
        text = st.text_area("Answer", key=feedback.form_key(prefix, f"{prefix}-text"), height=100)
        ready = bool(text.strip())
    else:
        labels = {t.code: t.label for t in options.templates}
        if not labels:
            st.warning("No template can be sent here now. WhatsApp templates need WhatsApp's approval: link one "
                       "to a Content template in Templates.", icon=":material/block:")
            return
        template_code = st.selectbox("Template", list(labels), format_func=lambda c: as_text(labels[c]),
                                     key=f"{prefix}-template")
        ready = template_code is not None
    preview = feedback.service(inbox.reply_preview, thread_id, text=text, template_code=template_code) if ready \
        else None
    if preview is not None:
        with st.container(border=True):
            st.caption(f"Preview · to {plain(preview.recipient)}")
            (rtl.show if preview.language == Language.AR else show_ltr)(preview.check.preview)
            show_check(preview.check)
        for problem in preview.problems:
            if problem != preview.check.error:  # show_check said it already
                st.warning(plain(problem), icon=":material/block:")
    idempotency_key = st.session_state.setdefault(feedback.form_key(prefix, f"{prefix}-key"), inbox.new_key())
    if st.button("Send answer", type="primary", icon=":material/send:", key=f"{prefix}-send",
                 disabled=preview is None or not preview.ok):
        sent = feedback.service(inbox.reply, thread_id, text=text, template_code=template_code,
                                idempotency_key=idempotency_key)
        if sent is not None:
            feedback.new_form(prefix)  # the next answer is a new form
            feedback.flash("inbox", "Answer sent: it is delivered in the background." if not sent.duplicate
                           else "This answer was already sent.")
            st.rerun()
