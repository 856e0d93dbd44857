"""Send one message to one patient: the form, its live preview and the send (``app.services.single_send``).

Drawn on the patient's page and in a message's detail ("Send another message to this patient").
The preview under the form is the template editor's counter (``templates.display.show_check``:
segments, length, cost, reply lint) over the text as this patient gets it. Each form instance has
one idempotency key, kept until "Write another message" (a new form): a double click sends once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app.services import single_send
from app.services.single_send import OneMessage, Preview, SendOptions
from app.ui import feedback, rtl
from app.ui.templates.display import class_label, show_check, show_ltr
from app.ui.text import plain
from db.enums import Channel, Language, MessageClass

LANGUAGE_NAMES = {Language.EN: "English", Language.AR: "Arabic"}
TEMPLATE, OWN_TEXT = "template", "text"


def section(patient_id: uuid.UUID, *, expanded: bool = False) -> None:
    """The form folded under "Send a message to this patient" (the patient's page)."""
    with st.expander("Send a message to this patient", icon=":material/send:", expanded=expanded):
        form(patient_id, place="patient")


def form(patient_id: uuid.UUID, *, place: str, in_dialog: bool = False) -> None:
    """The whole form for one patient; ``place`` keeps the widgets of two screens apart. In a dialog
    (a fragment) a send redraws only the dialog."""
    prefix = f"send1-{place}-{patient_id}"  # the form; "Write another message" makes it a new one

    def key(name: str) -> str:
        return feedback.form_key(prefix, f"{prefix}-{name}")

    options = feedback.service(single_send.options, patient_id)
    if options is None:
        return
    sent = st.session_state.get(key("sent"))
    if sent is not None:
        _sent(sent, key, prefix, in_dialog)
        return
    st.caption(" · ".join(f"{c.channel.label}: {plain(c.contact) if c.usable else plain(c.reason)}"
                          for c in options.channels))
    if options.preferred is None:
        st.info(f"{plain(options.patient_name)} cannot be reached on any channel.", icon=":material/block:")
        return
    draft = _draft(options, key)
    checked = feedback.service(single_send.preview, draft)
    if checked is not None and checked.needs_values:
        values = {name: st.text_input(f"Value for {name}", key=key(f"var-{name}"),
                                      help="The patient's record has no value for it.")
                  for name in checked.needs_values}
        draft = replace(draft, variables={**draft.variables, **values})
        checked = feedback.service(single_send.preview, draft)
    if checked is None:
        return
    _show_preview(checked, ZoneInfo(options.timezone))
    idempotency_key = st.session_state.setdefault(key("key"), single_send.new_key())
    label = "Schedule message" if draft.send_at_local else "Send message"
    if st.button(label, type="primary", icon=":material/send:", disabled=not checked.ok, key=key("send")):
        result = feedback.service(single_send.send, draft, idempotency_key=idempotency_key)
        if result is not None:
            st.session_state[key("sent")] = (result.message_id, result.status.value, options.patient_name)
            _redraw(in_dialog)


def _draft(options: SendOptions, key: Callable[[str], str]) -> OneMessage:
    channels = [c.channel for c in options.channels]
    reasons = {c.channel: c.reason for c in options.channels}
    left, right = st.columns(2)
    channel = left.selectbox(
        "Channel", channels, index=channels.index(options.preferred), key=key("channel"),
        format_func=lambda c: c.label + (" (cannot be used)" if reasons[c] else ""))
    languages: list[Language | None] = [None, Language.EN, Language.AR]
    language = right.selectbox(
        "Language", languages, key=key("language"),
        format_func=lambda x: f"The patient's ({LANGUAGE_NAMES[options.language]})" if x is None else LANGUAGE_NAMES[x])
    kind = st.radio("Message", [TEMPLATE, OWN_TEXT], horizontal=True, key=key("kind"),
                    format_func={TEMPLATE: "A template", OWN_TEXT: "My own text"}.__getitem__)
    template_id = None
    text = subject = ""
    message_class = MessageClass.SERVICE
    if kind == TEMPLATE:
        choices = dict(options.templates[channel])
        if not choices:
            st.info(f"No active {channel.label} template: write your own text, or pick another channel.",
                    icon=":material/description:")
        template_id = st.selectbox("Template", list(choices), format_func=choices.__getitem__,
                                   key=key(f"template-{channel.value}"), index=0 if choices else None)
    else:
        if channel == Channel.EMAIL:
            subject = st.text_input("Subject", key=key("subject"), max_chars=300)
        text = st.text_area("Text", key=key("text"), height=120,
                            help="You can use the template variables, e.g. {patient_first_name}.")
        message_class = st.radio("Class", list(MessageClass), horizontal=True, key=key("class"),
                                 format_func=class_label,
                                 help="Service: appointments and results. Promotional: offers, only with consent.")
    when, urgent_column = st.columns(2)
    later = when.toggle("Send later (clinic time)", key=key("later"))
    urgent = urgent_column.toggle("Urgent", key=key("urgent"),
                                  help="Goes out during the patient's quiet hours (not the promotional window).")
    send_at = None
    if later:
        zone = ZoneInfo(options.timezone)
        tomorrow = dt.datetime.now(zone).date() + dt.timedelta(days=1)
        day_column, time_column = st.columns(2)
        day = day_column.date_input("Day", value=tomorrow, key=key("day"))
        at = time_column.time_input("Time", value=dt.time(9, 0), step=900, key=key("time"))
        send_at = dt.datetime.combine(day, at)
    if kind == TEMPLATE and template_id is None:
        text = ""
    return OneMessage(patient_id=options.patient_id, channel=channel, template_id=template_id, text=text,
                      subject=subject, language=language, send_at_local=send_at, urgent=urgent,
                      message_class=message_class)


def _show_preview(checked: Preview, zone: ZoneInfo) -> None:
    with st.container(border=True):
        when = f"at {checked.send_at.astimezone(zone):%d %b %Y, %H:%M} clinic time" if checked.send_at else "now"
        st.markdown(f"**Preview** · to {plain(checked.recipient or '-')} · {LANGUAGE_NAMES[checked.language]} · "
                    f"{checked.message_class.value} · {when}")
        if checked.subject:
            st.caption("Subject")
            (rtl.show if checked.language == Language.AR else show_ltr)(checked.subject)
        if checked.language == Language.AR:
            rtl.show(checked.check.preview)
        else:
            show_ltr(checked.check.preview)
        show_check(checked.check)
        st.caption("**What this class means:** " + plain(" ".join(checked.class_rules)))
    for note in checked.notes:
        st.info(plain(note), icon=":material/schedule:")
    for problem in checked.problems:
        if not (checked.check.error and problem == checked.check.error):  # show_check said it already
            st.warning(plain(problem), icon=":material/block:")


def _sent(sent: tuple[uuid.UUID, str, str], key: Callable[[str], str], prefix: str, in_dialog: bool) -> None:
    message_id, status, name = sent
    st.success(f"The message to {plain(name)} is {status}: it is delivered in the background.",
               icon=":material/check_circle:")
    st.markdown(f"[Open it in Messages](/messages?message={message_id})")
    if st.button("Write another message", icon=":material/edit:", key=key("another")):
        feedback.new_form(prefix)  # new, empty widgets, a new idempotency key, nothing sent yet
        _redraw(in_dialog)


def _redraw(in_dialog: bool) -> None:
    """Draw the form again: only the dialog when it is in one and this run is the dialog's own, else all."""
    if in_dialog:
        try:
            st.rerun(scope="fragment")
        except StreamlitAPIException:  # a full run of the page (e.g. the dialog was opened by a link)
            pass
    st.rerun()
