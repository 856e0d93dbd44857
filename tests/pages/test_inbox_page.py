"""The Inbox page (AppTest): the front desk works a thread end to end, admins answer with an approved
template outside WhatsApp's 24 hours, analysts cannot open it, and stored text shows as typed."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.services import templates
from app.services.permissions import Actor
from app.ui.rtl import RLI
from db.enums import Channel, ConversationState
from db.models import AuditEvent, Conversation, Message, MessageTemplate, User
from db.session import tenant_session
from tests.factories import call, make_patient, make_reply
from tests.pages.conftest import Clinic, button, signed_in, texts

NOW = dt.datetime.now(dt.UTC)
SARA = "+966501234567"  # the neighbouring clinic has a Sara Ali with this number too


def open_inbox(actor: Actor, **params: str) -> AppTest:
    at = signed_in(actor)
    at.switch_page("../pages/inbox.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Inbox"
    return at


def rows(at: AppTest) -> list[dict]:
    return at.dataframe[0].value.to_dict("records")


def click_row(at: AppTest, row: int) -> AppTest:
    key = at.dataframe[0].key
    assert key and key.startswith("inbox-table-")
    at.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[row, "Patient"]]}}
    return at.run()


def widget(elements, ending: str):  # type: ignore[no-untyped-def]
    found = [e for e in elements if e.key and e.key.rsplit("@", 1)[0].endswith(ending)]  # @1: a renewed form
    assert found, f"no widget whose key ends with {ending!r}: {[e.key for e in elements]}"
    return found[0]


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def thread(clinic: Clinic, thread_id: uuid.UUID) -> Conversation:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        row = session.get(Conversation, thread_id)
        assert row is not None
        session.expunge(row)
        return row


def sent(clinic: Clinic) -> list[Message]:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        found = list(session.scalars(select(Message).order_by(Message.created_at)))
        session.expunge_all()
        return found


def test_the_front_desk_opens_answers_assigns_and_closes_a_thread(clinic: Clinic) -> None:
    tenant = clinic.front_desk.tenant_id
    make_patient(clinic.engine, tenant, phone=SARA)
    make_reply(clinic.engine, tenant, address="+966501112233", body="Who is this?",
               received_at=NOW - dt.timedelta(hours=3))
    sara = make_reply(clinic.engine, tenant, address=SARA, body="هل يمكنني الحضور الساعة ٥؟",
                      received_at=NOW - dt.timedelta(minutes=20))
    at = open_inbox(clinic.front_desk)

    assert [(r["Patient"], r["Unread"]) for r in rows(at)] == [("Sara Ali", "● 1"),
                                                               ("Unknown number", "● 1")]
    assert "2 unread replies" in texts(at.caption)[0]

    click_row(at, 0)
    assert at.query_params["thread"] == str(sara)
    assert any("Sara Ali" in h.value for h in at.subheader)
    assert rows(at)[0]["Unread"] == ""  # read by opening it
    assert any(RLI in m and "٥" in m for m in markdown(at))  # the Arabic reply, right to left
    assert any("Free text can be sent until" in c and "(Asia/Riyadh)" in c for c in texts(at.caption))

    widget(at.text_area, "-text").input("نعم، نراك الساعة 5").run()
    typed_in = widget(at.text_area, "-text").id
    assert not at.exception
    button(at, "Send answer").click().run()
    assert not at.exception and not at.error
    assert "Answer sent: it is delivered in the background." in texts(at.success)
    [message] = sent(clinic)
    assert (message.recipient, message.body.replace("\u200e", ""), message.created_by_id) == (
        SARA, "نعم، نراك الساعة 5", clinic.front_desk.user_id)
    answer = widget(at.text_area, "-text")
    assert answer.value == "" and answer.id != typed_in  # a new box: the browser cannot give the answer back
    answer.input("Thank you").run()
    button(at, "Send answer").click().run()
    assert "Answer sent: it is delivered in the background." in texts(at.success)  # a new idempotency key
    assert len(sent(clinic)) == 2

    widget(at.selectbox, f"inbox-assign-{sara}").set_value(clinic.front_desk.user_id).run()
    button(at, "Assign").click().run()
    assert thread(clinic, sara).assigned_to_id == clinic.front_desk.user_id
    button(at, "Mark done").click().run()
    assert not at.exception
    done = thread(clinic, sara)
    assert (done.state, done.waiting_since) == (ConversationState.DONE, None)
    assert [r["Patient"] for r in rows(at)] == ["Unknown number"]  # the open list no longer has it
    button(at, "Reopen").click().run()
    assert thread(clinic, sara).state == ConversationState.OPEN
    button(at, "Close the thread").click().run()
    assert "thread" not in at.query_params
    with tenant_session(clinic.engine, tenant) as session:
        actions = sorted(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("inbox.%"))))
    assert actions == ["inbox.assign", "inbox.done", "inbox.reopen", "inbox.reply", "inbox.reply"]  # two answers


def test_outside_the_24_hours_only_an_approved_template_and_the_screen_says_why(clinic: Clinic) -> None:
    tenant = clinic.admin.tenant_id
    make_patient(clinic.engine, tenant, phone=SARA)
    thread_id = make_reply(clinic.engine, tenant, address=SARA, body="Hello?", received_at=NOW - dt.timedelta(days=2))
    at = open_inbox(clinic.admin, thread=str(thread_id))

    assert any("Outside those 24 hours WhatsApp delivers only a template it approved" in i for i in texts(at.info))
    assert not at.text_area  # no free text
    assert any("No template can be sent here now" in w for w in texts(at.warning))
    assert "Send answer" not in [b.label for b in at.button]

    template_id = call(clinic.engine, clinic.admin, templates.create_template, code="callback", name="Call back",
                       channel=Channel.WHATSAPP, body_en="We will call you today, {{ patient_name }}.").id
    with tenant_session(clinic.engine, tenant) as session:
        row = session.get(MessageTemplate, template_id)
        assert row is not None
        row.whatsapp_content_sid, row.whatsapp_approval_status = "HX" + "b" * 32, "approved"
    at.run()
    assert "We will call you today, Sara Ali." in [m.replace("\\", "") for m in markdown(at)]  # the preview
    button(at, "Send answer").click().run()
    assert not at.exception and not at.error
    [message] = sent(clinic)
    assert (message.template_id, message.recipient, message.created_by_id) == (template_id, SARA, clinic.admin.user_id)


def test_filters_narrow_the_list(clinic: Clinic) -> None:
    tenant = clinic.front_desk.tenant_id
    make_reply(clinic.engine, tenant, address="+966500000001", intent="reschedule", body="Can we move it?")
    make_reply(clinic.engine, tenant, address="+966500000002", intent="unclear", body="ok",
               received_at=NOW - dt.timedelta(days=2))
    at = open_inbox(clinic.front_desk)
    assert len(rows(at)) == 2

    at.multiselect[0].select("reschedule")
    button(at, "Apply filters").click().run()
    assert [r["Last reply"] for r in rows(at)] == ["Can we move it?"]


def test_stored_text_shows_as_typed_never_as_markdown_or_html(clinic: Clinic) -> None:
    tenant = clinic.front_desk.tenant_id
    hostile = "**bold** <script>alert(1)</script> \u202eevil"
    thread_id = make_reply(clinic.engine, tenant, address=SARA, body=hostile)
    at = open_inbox(clinic.front_desk, thread=str(thread_id))

    shown = [m for m in markdown(at) if "alert" in m]
    assert shown and all("\\*\\*bold\\*\\*" in m and "\\<script\\>" in m and "\u202e" not in m for m in shown)
    assert not any("<script>" in m for m in markdown(at))


def test_analysts_cannot_open_the_inbox(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/inbox.py")
    at.run()
    assert at.title[0].value == "Analytics" and not at.dataframe


def test_the_assignment_notice_shows_a_staff_name_as_typed(clinic: Clinic) -> None:
    tenant = clinic.front_desk.tenant_id
    with tenant_session(clinic.engine, tenant) as session:
        user = session.get(User, clinic.front_desk.user_id)
        assert user is not None
        user.display_name = "**Boss** [x](https://evil.example) \u202eevil"
    thread_id = make_reply(clinic.engine, tenant, address=SARA, body="Hello?")
    at = open_inbox(clinic.front_desk, thread=str(thread_id))

    widget(at.selectbox, f"inbox-assign-{thread_id}").set_value(clinic.front_desk.user_id).run()
    button(at, "Assign").click().run()
    assert not at.exception
    [notice] = [s for s in texts(at.success) if s.startswith("Assigned to")]
    assert "\\*\\*Boss\\*\\*" in notice and "\\[x\\]" in notice and "\u202e" not in notice


def test_a_thread_done_leaves_the_list_and_a_click_on_the_row_moved_up_opens_the_next(clinic: Clinic) -> None:
    tenant = clinic.front_desk.tenant_id
    first = make_reply(clinic.engine, tenant, address="+966500000011", body="First?")
    second = make_reply(clinic.engine, tenant, address="+966500000012", body="Second?",
                        received_at=NOW - dt.timedelta(hours=1))
    at = open_inbox(clinic.front_desk)
    table = at.dataframe[0].key

    click_row(at, 0)
    assert at.query_params["thread"] == str(first)
    assert at.dataframe[0].key != table  # drawn afresh: no selection left to mark another patient's row
    button(at, "Mark done").click().run()
    assert [r["Last reply"] for r in rows(at)] == ["Second?"]
    click_row(at, 0)  # the same row number, another thread
    assert at.query_params["thread"] == str(second)
    assert any("Second?" in m for m in markdown(at))
    assert "by Automatic" not in " ".join(texts(at.caption))
