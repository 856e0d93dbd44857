"""The Bulk send page: the whole wizard for an admin, the limited front-desk path, no way in for analysts."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from app.ui import navigation
from db.enums import BulkJobStatus, Language, MessageStatus, Role
from db.models import AuditEvent, BulkJob, Message, NotificationPreference, Patient, PatientTag
from db.session import tenant_session
from tests.pages.conftest import Clinic, button, signed_in, texts


def bulk_page(clinic: Clinic, role: Role = Role.ADMIN) -> AppTest:
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/bulk.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Bulk send"
    return at


def add_patients(clinic: Clinic, count: int, tag: str = "diabetes") -> None:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
        for i in range(count):
            p = Patient(name_en=f"Patient {i}", name_ar=f"مريض {i}", phone_e164=f"+9665{i:08d}",
                        language=Language.AR if i % 2 else Language.EN)
            s.add(p)
            s.flush()
            s.add(PatientTag(patient_id=p.id, tag=tag))


def step(at: AppTest, label: str) -> AppTest:
    button(at, label).click().run()
    assert not at.exception, at.exception
    return at


def custom_text(at: AppTest, english: str, arabic: str = "") -> None:
    """On the Content step: custom text instead of a template."""
    at.radio(key="bulk_w_source").set_value("Custom text").run()
    at.text_area(key="bulk_w_body_en").input(english).run()
    if arabic:
        at.text_area(key="bulk_w_body_ar").input(arabic).run()


def will_be_sent(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Will be sent"]


def wait_for_expansion(clinic: Clinic, expected: int) -> None:
    for _ in range(100):
        with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
            if s.scalar(select(func.count()).select_from(Message)) == expected:
                return
        time.sleep(0.1)
    raise AssertionError("the worker did not expand the job")


def test_admin_goes_through_the_whole_wizard_and_back_without_losing_input(clinic: Clinic) -> None:
    add_patients(clinic, 4)
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("tags").run()
    at.multiselect(key="bulk_w_any_of").set_value(["diabetes"]).run()
    step(at, "Next")
    custom_text(at, "Closed on Friday. {{ clinic_name }}", "مغلق يوم الجمعة")
    step(at, "Back")
    assert at.multiselect(key="bulk_w_any_of").value == ["diabetes"]  # input kept
    step(at, "Next")
    assert at.text_area(key="bulk_w_body_en").value == "Closed on Friday. {{ clinic_name }}"
    step(at, "Next")
    assert will_be_sent(at) == "4"
    assert "Service" in texts(at.info)[0]
    step(at, "Next")
    step(at, "Send")
    assert "Sending has started." in texts(at.success)
    wait_for_expansion(clinic, 4)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(BulkJob)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "bulk_job.create")) == 1
    at.run()
    assert at.dataframe[-1].value.shape[0] == 1  # the jobs list
    assert any("explorer" in m for m in texts(at.markdown))


def test_the_review_is_worked_out_on_arrival_not_on_every_rerun(clinic: Clinic) -> None:
    add_patients(clinic, 3)
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("all").run()
    step(at, "Next")
    custom_text(at, "Closed on Friday.", "مغلق يوم الجمعة")
    step(at, "Next")
    assert will_be_sent(at) == "3"
    add_patients(clinic, 2, tag="new")

    at.run()  # any click on the review step
    assert will_be_sent(at) == "3"
    step(at, "Back")
    step(at, "Next")
    assert will_be_sent(at) == "5"


def test_large_send_needs_the_typed_number(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULK_CONFIRM_THRESHOLD", "2")
    add_patients(clinic, 3)
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("all").run()
    step(at, "Next")
    custom_text(at, "Hello")
    step(at, "Next")
    step(at, "Next")
    step(at, "Send")
    assert any("Type 3 to confirm" in e for e in texts(at.error))
    at.text_input(key="bulk_w_typed").input("3").run()
    step(at, "Send")
    assert "Sending has started." in texts(at.success)


def test_front_desk_sends_to_a_short_pasted_list_only(clinic: Clinic) -> None:
    at = bulk_page(clinic, Role.FRONT_DESK)
    assert at.radio(key="bulk_w_kind").options == ["A custom list (paste or upload)"]
    at.text_area(key="bulk_w_pasted").input("0500000001\n0500000002\n0500000002\nnot a number\n").run()
    assert "2 recipients ready; 2 rows refused." in texts(at.success)
    step(at, "Next")
    custom_text(at, "Your results are ready.")
    step(at, "Next")
    reasons = {row["Reason"] for row in at.dataframe[-1].value.to_dict("records")}
    assert reasons == {"invalid number", "duplicate"}
    step(at, "Next")
    step(at, "Send")
    wait_for_expansion(clinic, 2)
    assert not [b for b in at.button if b.label == "Pause"]  # front desk cannot pause or cancel


def test_front_desk_is_refused_more_than_20_before_anything_says_ready(clinic: Clinic) -> None:
    at = bulk_page(clinic, Role.FRONT_DESK)
    at.text_area(key="bulk_w_pasted").input("\n".join(f"05000000{i:02d}" for i in range(10, 31))).run()

    assert not [s for s in texts(at.success) if "ready" in s]  # no green "21 recipients ready"
    assert any("at most 20" in e and "21" in e for e in texts(at.error))
    assert button(at, "Next").disabled
    at.text_area(key="bulk_w_pasted").input("\n".join(f"05000000{i:02d}" for i in range(10, 30))).run()
    assert "20 recipients ready; 0 rows refused." in texts(at.success) and not at.error
    assert not button(at, "Next").disabled


def test_the_review_adds_up_and_the_confirm_step_asks_for_what_is_sent(clinic: Clinic,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULK_CONFIRM_THRESHOLD", "2")
    add_patients(clinic, 4)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
        s.add(NotificationPreference(patient_id=s.scalars(select(Patient.id).order_by(Patient.phone_e164)).first(),
                                     sms_opt_in=False))
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("all").run()
    step(at, "Next")
    custom_text(at, "Closed on Friday.", "مغلق يوم الجمعة 2026-12-04، اتصل على +966112345678")
    step(at, "Next")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Recipients in the audience"], metrics["Will be sent"], metrics["Skipped"]) == ("4", "3", "1")
    assert any("channel disabled: 1" in c for c in texts(at.caption))
    by_language = at.dataframe[0].value.to_dict("records")
    assert {r["Channel and language"] for r in by_language} <= {"SMS, English", "SMS, Arabic"}
    assert sum(r["Will be sent"] for r in by_language) == 3
    assert any("Sample in Arabic" in m and "2 direction marks" in m for m in texts(at.markdown))
    step(at, "Next")
    assert any("This sends 3 messages" in m and "1 of the 4" in m for m in texts(at.markdown))
    assert at.text_input(key="bulk_w_typed").label.startswith("Type 3 ")
    at.text_input(key="bulk_w_typed").input("4").run()
    step(at, "Send")
    assert any("Type 3 to confirm" in e for e in texts(at.error))
    at.text_input(key="bulk_w_typed").input("3").run()
    step(at, "Send")
    assert "Sending has started." in texts(at.success)


def test_analysts_have_no_bulk_page(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    assert "Bulk send" not in navigation.menu_titles(clinic.analyst)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/bulk.py")


def test_a_list_is_read_and_checked_once_not_on_every_click(clinic: Clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.services.bulk import recipients as ri

    calls = {"read": 0, "check": 0}
    real_read, real_check = ri.read_pasted, ri.to_recipients

    def counted(name, real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(ri, "read_pasted", counted("read", real_read))
    monkeypatch.setattr(ri, "to_recipients", counted("check", real_check))
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("list").run()
    at.text_area(key="bulk_w_pasted").input("name,phone\nSara,0500000001\nOmar,bad\n").run()
    assert "1 recipient ready; 1 row refused." in texts(at.success)
    at.run()
    at.run()
    assert calls == {"read": 1, "check": 1}
    at.selectbox(key="bulk_w_map_name").set_value("(none)").run()  # a new mapping: checked again, not read
    assert calls == {"read": 1, "check": 2}
    at.text_area(key="bulk_w_pasted").input("0500000002\n0500000003\n").run()
    assert calls == {"read": 2, "check": 3}
    assert "2 recipients ready; 0 rows refused." in texts(at.success)


def test_pause_and_cancel_show_only_while_the_job_moves(clinic: Clinic) -> None:
    add_patients(clinic, 3)
    at = bulk_page(clinic)
    at.radio(key="bulk_w_kind").set_value("tags").run()
    at.multiselect(key="bulk_w_any_of").set_value(["diabetes"]).run()
    step(at, "Next")
    custom_text(at, "Closed on Friday.", "مغلق يوم الجمعة")
    step(at, "Next")
    step(at, "Next")
    step(at, "Send")
    wait_for_expansion(clinic, 3)
    at.run()
    labels = {b.label for b in at.button}
    assert {"Pause", "Cancel what is not sent"} <= labels
    assert any("Sending" in m or "Scheduled" in m for m in texts(at.markdown))

    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:  # every message reported, the job ends
        s.execute(update(Message).values(status=MessageStatus.DELIVERED))
        job = s.scalars(select(BulkJob)).one()
        job.status, job.completed_at = BulkJobStatus.COMPLETED, job.created_at
    at.run()
    labels = {b.label for b in at.button}
    assert not labels & {"Pause", "Resume", "Cancel what is not sent"}, labels
    assert any("Completed" in m for m in texts(at.markdown))
    assert at.dataframe[-1].value.to_dict("records")[0]["Status"] == "Completed"
