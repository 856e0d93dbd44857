"""The Messages and Patients pages: filter, open a message, retry as front desk, read-only analysts, export."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.services.permissions import Actor
from db.enums import Role
from db.models import AuditEvent, Message, PreferenceChange
from db.session import tenant_session
from tests.factories import make_message, make_patient
from tests.pages.conftest import Clinic, button, signed_in, texts

NOW = dt.datetime.now(dt.UTC)


def open_page(actor: Actor, page: str = "messages", **params: str) -> AppTest:
    at = signed_in(actor)
    at.switch_page(f"../pages/{page}.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, index: int = 0) -> list[dict]:
    return at.dataframe[index].value.to_dict("records")


def by_label(widgets, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in widgets if w.label == label)


@pytest.fixture
def messages(clinic: Clinic) -> dict[str, uuid.UUID]:
    tenant = clinic.admin.tenant_id
    sara = make_patient(clinic.engine, tenant)
    return {
        "failed": make_message(clinic.engine, tenant, status="failed", error_code="21211", patient_id=sara,
                               created_at=NOW - dt.timedelta(minutes=3)),
        "delivered": make_message(clinic.engine, tenant, recipient="+966507654321",
                                  created_at=NOW - dt.timedelta(minutes=2)),
        "email": make_message(clinic.engine, tenant, channel="email", recipient="sara@example.com", patient_id=sara,
                              created_at=NOW - dt.timedelta(minutes=1)),
    }


def test_the_list_and_a_filter_that_lands_in_the_url(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk)
    assert [r["Status"] for r in table(at)] == ["✅ Delivered", "✅ Delivered", "❌ Failed"]
    assert "3 messages" in texts(at.caption)[0]

    by_label(at.text_input, "Search").input("0501234567")
    by_label(at.multiselect, "Status").select("failed")
    button(at, "Apply filters").click().run()

    assert not at.exception
    assert [r["Status"] for r in table(at)] == ["❌ Failed"]
    assert at.query_params["q"] == "0501234567" and at.query_params["status"] == "failed"


def test_a_shared_link_reopens_the_same_view(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.analyst, channel="email")

    assert [r["Channel"] for r in table(at)] == ["Email"]
    assert by_label(at.multiselect, "Channel").value == ["email"]


def test_a_bad_link_shows_the_default_view_with_a_warning(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk, status="lost")

    assert "not understood" in texts(at.warning)[0]
    assert len(table(at)) == 3


def click_row(at: AppTest, row: int, column: str = "Status") -> AppTest:
    """What a click on a cell of the results table sends back to the script."""
    key = at.dataframe[0].key
    assert key and key.startswith("table-")
    at.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[row, column]]}}
    return at.run()


def test_open_a_message_and_retry_it_as_front_desk(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk)
    failed = messages["failed"]
    assert table(at)[2]["Status"] == "❌ Failed"
    click_row(at, 2)

    assert at.query_params["message"] == str(failed)
    assert "SMS message · ❌ Failed" in [h.value for h in at.subheader]
    assert "Error 21211: The number is not a valid mobile number." in texts(at.error)
    assert any("Correct the phone number on the patient record" in t for t in texts(at.info))

    button(at, "Retry this message").click().run()

    assert not at.exception
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        retry = session.scalar(select(Message).where(Message.retry_of_id == failed))
    assert retry is not None and at.query_params["message"] == str(retry.id)
    assert "Open the original" in [b.label for b in at.button]
    assert "A new attempt is queued, linked to this message." in texts(at.success)
    assert any("updates itself every 2 seconds" in c for c in texts(at.caption))  # the retry is on its way


def test_a_final_message_does_not_refresh_and_close_clears_the_link(clinic: Clinic,
                                                                    messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk, message=str(messages["delivered"]))  # a shared link opens it too

    assert "SMS message · ✅ Delivered" in [h.value for h in at.subheader]
    assert not any("updates itself" in c for c in texts(at.caption))
    button(at, "Close").click().run()
    assert "message" not in at.query_params and not [h for h in at.subheader if "message ·" in h.value]
    assert len(table(at)) == 3  # the list, its filter and page are as they were


def test_bulk_selection_still_retries_the_selected(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk)
    by_label(at.multiselect, "Select messages on this page").set_value([messages["failed"]]).run()
    button(at, "Retry selected (1)").click().run()

    assert "1 new attempt(s) queued; each is linked to its original." in texts(at.success)


def test_retry_all_failed_in_the_filter_with_the_count_confirmed(clinic: Clinic,
                                                                 messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk)
    button(at, "Count them").click().run()
    assert button(at, "Retry 1 messages").disabled

    at.checkbox[-1].check().run()
    button(at, "Retry 1 messages").click().run()

    assert "1 new attempts queued." in texts(at.success)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        assert session.scalar(select(Message.id).where(Message.retry_of_id == messages["failed"])) is not None


def test_analysts_read_masked_and_cannot_retry(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.analyst, message=str(messages["failed"]))

    assert table(at)[0]["Recipient"] == "s***@example.com"
    labels = [b.label for b in at.button]
    assert "Retry this message" not in labels and "Count them" not in labels
    assert not any(label.startswith("Retry selected") for label in labels)


def test_export_prepares_a_download_and_is_audited(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.analyst)
    button(at, "Prepare CSV").click().run()

    assert not at.exception and not at.error
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "messages.export"))
    assert event is not None and event.details["rows"] == 3 and event.details["masked"] is True


def test_front_desk_has_no_export(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk)

    assert "Prepare CSV" not in [b.label for b in at.button]


def test_patient_view_search_why_and_preference_change(clinic: Clinic, messages: dict[str, uuid.UUID]) -> None:
    at = open_page(clinic.front_desk, page="patients")
    by_label(at.text_input, "Find a patient").input("+966 50 123 4567").run()

    assert not at.exception
    assert at.subheader[0].value == "Sara Ali"
    assert any("delivered" in m.value for m in at.markdown)  # the last message was the e-mail
    assert len(table(at)) == 0 or table(at, -1)[0]["Channel"] == "Email"

    by_label(at.toggle, "SMS messages").set_value(False)
    by_label(at.text_input, "Reason").input("patient asked at the desk")
    button(at, "Save preferences").click().run()

    assert "Preferences saved." in texts(at.success)
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        change = session.scalar(select(PreferenceChange))
    assert change is not None and change.reason == "patient asked at the desk"


def test_analysts_have_no_patient_page(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/patients.py")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK])
def test_admin_and_front_desk_see_contacts_whole(clinic: Clinic, messages: dict[str, uuid.UUID], role: Role) -> None:
    at = open_page(clinic.by_role(role))

    assert table(at)[0]["Recipient"] == "sara@example.com"


def test_a_bulk_job_still_being_prepared_says_how_far_it_has_come(clinic: Clinic) -> None:
    from db.enums import BulkJobStatus, Channel
    from db.models import BulkJob

    tenant = clinic.admin.tenant_id
    with tenant_session(clinic.engine, tenant) as s:
        job = BulkJob(name="Big send", channel=Channel.SMS, status=BulkJobStatus.SENDING, total_recipients=50_000,
                      audience={"kind": "all"})
        s.add(job)
        s.flush()
        job_id = job.id
    make_message(clinic.engine, tenant, bulk_job_id=job_id)
    at = open_page(clinic.by_role(Role.ANALYST), period="all", bulk=str(job_id))
    [note] = [i.value for i in at.info if "still being prepared" in i.value]
    assert "1 of about 50,000 messages written so far" in note
    assert len(table(at)) == 1


def test_filters_applied_one_after_another_each_take_effect_in_one_run(clinic: Clinic,
                                                                        messages: dict[str, uuid.UUID]) -> None:
    """Apply shows the new filter in the same run (no second run), and the next change is not lost."""
    at = open_page(clinic.admin)
    by_label(at.text_input, "Search").input("0501234567")
    button(at, "Apply filters").click().run()
    assert at.query_params["q"] == "0501234567" and [r["Status"] for r in table(at)] == ["❌ Failed"]
    by_label(at.text_input, "Search").input("0507654321")
    button(at, "Apply filters").click().run()
    assert at.query_params["q"] == "0507654321" and [r["Status"] for r in table(at)] == ["✅ Delivered"]
    assert by_label(at.text_input, "Search").value == "0507654321"
    at.query_params["q"] = "0501234567"  # a link changes the filter: the form shows the link's filter
    at.run()
    assert by_label(at.text_input, "Search").value == "0501234567"
    assert [r["Status"] for r in table(at)] == ["❌ Failed"]
