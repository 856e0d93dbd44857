"""The Appointments page: admins upload a list, review it and apply it; front desk sees the list only;
analysts cannot open it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.errors import PermissionDenied
from app.services.appointments import listing, records
from app.services.appointments.listing import AppointmentFilter
from app.services.appointments.records import AppointmentInput
from db.enums import AppointmentStatus, Role
from db.models import Appointment, Patient
from db.session import tenant_session
from tests.factories import call, make_tenant
from tests.pages.conftest import Clinic, button, signed_in, texts

RIYADH = ZoneInfo("Asia/Riyadh")
TOMORROW = (dt.datetime.now(RIYADH) + dt.timedelta(days=1)).date()


def patients(clinic: Clinic) -> None:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        session.add_all([Patient(mrn="MRN-0", name_en="Sara Ali", name_ar="سارة علي", phone_e164="+966501234567"),
                         Patient(mrn="MRN-1", name_en="[Omar](http://evil.example)", phone_e164="+966507654321")])


def page(clinic: Clinic, role: Role) -> AppTest:
    at = signed_in(clinic.by_role(role))
    at.switch_page("../pages/appointments.py").run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["appt_tab"] = label
    return at.run()


def stored(clinic: Clinic) -> dict[str, Appointment]:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        rows = list(session.scalars(select(Appointment)))
        for row in rows:
            session.expunge(row)
        return {row.source_id or "": row for row in rows}


def test_an_admin_uploads_reviews_and_applies(clinic: Clinic) -> None:
    patients(clinic)
    data = (f"Appointment ID,MRN,Date,Time,Department\nA-1,MRN-0,{TOMORROW},09:30,Dental\n"
            f"A-2,MRN-1,{TOMORROW},10:00,=HYPERLINK(\"http://evil.example\")\nA-3,MRN-9,{TOMORROW},11:00,Eyes\n"
            ).encode()
    at = open_tab(page(clinic, Role.ADMIN), "Upload")

    at.file_uploader(key="appt_file_0").set_value(("list.csv", data, "text/csv")).run()

    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric} == {"New": "2", "Changed": "0", "Cancelled": "0",
                                                      "Unchanged": "0", "Refused": "1"}
    assert stored(clinic) == {}  # nothing saved by the review
    refused = at.dataframe[-1].value
    assert list(refused["Row"]) == [4] and list(refused["Reason"]) == ["no patient with MRN MRN-9 in this clinic"]

    at = button(at, "Apply 2 changes").click().run()

    assert not at.exception, at.exception
    assert "Applied: 2 new, 0 changed, 0 cancelled, 0 unchanged." in texts(at.success)
    saved = stored(clinic)
    assert set(saved) == {"A-1", "A-2"} and saved["A-2"].department == '=HYPERLINK("http://evil.example")'
    assert "1 row of the last upload was refused and not saved." in texts(at.warning)


def test_a_file_that_cannot_be_read_says_why(clinic: Clinic) -> None:
    at = open_tab(page(clinic, Role.ADMIN), "Upload")

    at.file_uploader(key="appt_file_0").set_value(("list.csv", b"Name,Phone\nSara,0501234567\n", "text/csv")).run()

    assert not at.exception
    assert any("The file has no column for the appointment id" in e for e in texts(at.error))
    assert not [b for b in at.button if b.label.startswith("Apply")]


def test_front_desk_sees_the_list_but_no_upload(clinic: Clinic) -> None:
    patients(clinic)
    starts = dt.datetime.combine(TOMORROW, dt.time(9, 30), RIYADH)
    call(clinic.engine, clinic.admin, records.apply, [
        AppointmentInput("A-1", "MRN-0", starts, department="Dental", doctor_name_ar="د. هدى"),
        AppointmentInput("A-2", "MRN-1", starts + dt.timedelta(hours=1), status=AppointmentStatus.CANCELLED)],
         source="api")
    other = make_tenant(clinic.engine, "clinic-b")  # the same MRN and id in another clinic
    with tenant_session(clinic.engine, other) as session:
        session.add(Patient(mrn="MRN-0", name_en="Sara Ali (clinic B)"))
    call(clinic.engine, other, records.apply, [AppointmentInput("A-1", "MRN-0", starts)], source="api")

    at = page(clinic, Role.FRONT_DESK)

    assert at.title[0].value == "Appointments" and not at.tabs
    assert not at.file_uploader
    table = at.dataframe[0].value
    assert list(table["Patient"]) == ["Sara Ali", "[Omar](http://evil.example)"]
    assert list(table["Status"]) == ["Booked", "Cancelled"]
    assert "Start (Asia/Riyadh)" in table.columns
    assert table["Start (Asia/Riyadh)"].iloc[0] == dt.datetime.combine(TOMORROW, dt.time(9, 30))

    at.multiselect(key="appt_status").set_value([AppointmentStatus.CANCELLED]).run()
    assert list(at.dataframe[0].value["MRN"]) == ["MRN-1"]
    at.text_input(key="appt_text").input("sara").run()
    assert not at.dataframe and "No appointments in these days." in texts(at.info)


def test_analysts_cannot_open_the_page(clinic: Clinic) -> None:
    at = signed_in(clinic.analyst)

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/appointments.py")
    with pytest.raises(PermissionDenied):  # and the page's read refuses them too
        call(clinic.engine, clinic.analyst, listing.appointments, AppointmentFilter(TOMORROW, TOMORROW))
