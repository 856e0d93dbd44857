"""Analytics' "Reminders and replies" tab: admins and analysts see its figures and download each
chart's data; the front desk cannot open Analytics; an empty period says what to do."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from streamlit.testing.v1 import AppTest

from db.enums import AppointmentStatus, Channel, MessageStatus, ReminderStatus, ReplyIntent, Role
from db.models import Appointment, AppointmentReminder, Conversation, InboundMessage, Message, Patient, ReminderRule
from db.session import tenant_session
from tests.pages.conftest import Clinic, signed_in

TAB = "Reminders and replies"
CHARTS = ("reminder_confirmation_rate", "cancellations_by_reply", "no_shows_by_reminder", "front_desk_reply_time",
          "replies_by_intent")


def _history(clinic: Clinic) -> None:
    """In the last week: two reminded appointments (one confirmed and kept, one cancelled by reply 30 h
    ahead), one not reminded and missed; a question answered after 15 minutes, another still waiting."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        sara = Patient(name_en="Sara Ali", phone_e164="+966501234567")
        omar = Patient(name_en="Omar Said", phone_e164="+966507654321")
        rule = ReminderRule(name="WhatsApp 48 h before", channel=Channel.WHATSAPP, offset_minutes=2880)
        session.add_all([sara, omar, rule])
        session.flush()
        threads = {p.id: Conversation(address=p.phone_e164, patient_id=p.id) for p in (sara, omar)}
        session.add_all(threads.values())
        session.flush()

        def appointment(patient: Patient, days_ago: float, status: AppointmentStatus, reminded: bool) -> uuid.UUID:
            starts = now - dt.timedelta(days=days_ago)
            row = Appointment(patient_id=patient.id, starts_at=starts, status=status, source_id=str(uuid.uuid4()))
            session.add(row)
            session.flush()
            if reminded:
                session.add(AppointmentReminder(appointment_id=row.id, rule_id=rule.id, status=ReminderStatus.SENT,
                                                due_at=starts - dt.timedelta(days=2),
                                                sent_at=starts - dt.timedelta(days=2)))
            return row.id

        def reply(patient: Patient, at: dt.datetime, intent: ReplyIntent, about: uuid.UUID | None,
                  outcome: str) -> None:
            session.add(InboundMessage(conversation_id=threads[patient.id].id, patient_id=patient.id,
                                       channel=Channel.WHATSAPP, from_address=patient.phone_e164, body="نعم",
                                       received_at=at, intent=intent, appointment_id=about, outcome=outcome))

        kept = appointment(sara, 3, AppointmentStatus.COMPLETED, True)
        reply(sara, now - dt.timedelta(days=4), ReplyIntent.CONFIRM, kept, "appointment confirmed")
        freed = appointment(omar, 2, AppointmentStatus.CANCELLED, True)
        reply(omar, now - dt.timedelta(days=2, hours=30), ReplyIntent.CANCEL, freed, "appointment cancelled")
        appointment(omar, 2, AppointmentStatus.NO_SHOW, False)
        asked = now - dt.timedelta(days=1)
        reply(sara, asked, ReplyIntent.UNCLEAR, None, "for the front desk: not clearly understood")
        session.add(Message(patient_id=sara.id, created_by_id=clinic.front_desk.user_id, recipient=sara.phone_e164,
                            channel=Channel.WHATSAPP, body="Yes, the doctor is in.", status=MessageStatus.DELIVERED,
                            created_at=asked + dt.timedelta(minutes=15), updated_at=asked))
        reply(omar, now - dt.timedelta(hours=2), ReplyIntent.RESCHEDULE, None,
              "for the front desk: the patient asks for another time")


def open_tab(at: AppTest) -> AppTest:
    at.session_state["analytics_tab"] = TAB
    return at.run()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN])
def test_the_tab_shows_the_figures_and_every_chart_downloads(clinic: Clinic, role: Role) -> None:
    _history(clinic)
    at = signed_in(clinic.by_role(role))
    if role == Role.ADMIN:
        at.switch_page("../pages/analytics.py").run()
    at = open_tab(at)

    assert not at.exception and not at.error
    assert TAB in [t.label for t in at.tabs]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Confirmed by reply"] == "50.0%"  # one of the two reminded appointments
    assert metrics["Cancelled by reply"] == "1"
    assert metrics["Front desk reply time (median)"] == "15 min"
    assert metrics["Replies still waiting"] == "1"
    assert {b.key for b in at.get("download_button")} == {f"csv_{name}" for name in CHARTS}
    no_shows = next(d.value for d in at.dataframe if "No-show rate (%)" in d.value.columns)
    assert no_shows.set_index("Appointments")["No-show rate (%)"].to_dict() == {"Reminded": 0.0,
                                                                                 "Not reminded": 100.0}


@pytest.mark.parametrize(("role", "who"), [(Role.ANALYST, "an admin sets up rules"), (Role.ADMIN, "set up rules")])
def test_an_empty_period_says_what_to_do(clinic: Clinic, role: Role, who: str) -> None:
    at = signed_in(clinic.by_role(role))
    if role == Role.ADMIN:
        at.switch_page("../pages/analytics.py").run()
    at = open_tab(at)
    assert not at.exception and not at.error
    captions = [c.value for c in at.caption]
    assert f"No reminders sent for appointments in this period: {who} on the Reminders page." in captions
    assert "No replies from patients in this period." in captions
    assert not at.get("download_button")
    assert {m.label: m.value for m in at.metric}["Confirmed by reply"] == "—"


def test_front_desk_cannot_open_analytics(clinic: Clinic) -> None:
    _history(clinic)
    at = signed_in(clinic.front_desk)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/analytics.py")
