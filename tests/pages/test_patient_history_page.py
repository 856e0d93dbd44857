"""The Patients page's opt-out and preference history reads in words (issue 19, point 7): 'WhatsApp
messages', 'yes' -> 'opted out', 'Arabic', never the stored 'whatsapp opt in', 'true', 'false'."""

from __future__ import annotations

import datetime as dt

from streamlit.testing.v1 import AppTest

from app.services import patients
from app.services.patients import PreferenceUpdate
from db.enums import Language, Role
from tests.factories import call, make_patient
from tests.pages.conftest import Clinic, signed_in


def test_the_history_table_says_what_changed_in_words(clinic: Clinic) -> None:
    sara = make_patient(clinic.engine, clinic.admin.tenant_id)
    call(clinic.engine, clinic.front_desk, patients.change_preferences, sara, PreferenceUpdate(
        sms_opt_in=True, whatsapp_opt_in=False, email_opt_in=True, language=Language.AR,
        quiet_hours_start=dt.time(22), quiet_hours_end=dt.time(7)), reason="patient asked at the desk")

    at: AppTest = signed_in(clinic.by_role(Role.FRONT_DESK))
    at.switch_page("../pages/patients.py")
    at.query_params["q"] = "Sara"
    at.query_params["patient"] = str(sara)
    at.run()
    assert not at.exception, at.exception

    history = next(frame.value for frame in at.dataframe if "What" in frame.value.columns)
    rows = {(r["What"], r["From"], r["To"]) for r in history.to_dict("records")}
    assert ("WhatsApp messages", "yes", "opted out") in rows
    assert ("Language", "as the patient record", "Arabic") in rows
    assert ("Quiet hours from", "none", "22:00") in rows
    assert not {"true", "false", ""} & {value for row in rows for value in row[1:]}


def test_the_history_has_the_pages_full_width_and_the_reason_last(clinic: Clinic) -> None:
    """Review 19b, point 2: in half the page (beside the preferences) By and Reason were cut off at 1,400 px."""
    import json

    sara = make_patient(clinic.engine, clinic.admin.tenant_id)
    call(clinic.engine, clinic.front_desk, patients.change_preferences, sara, PreferenceUpdate(
        sms_opt_in=False, whatsapp_opt_in=True, email_opt_in=True, language=None, quiet_hours_start=None,
        quiet_hours_end=None), reason="patient asked at the desk")
    at: AppTest = signed_in(clinic.by_role(Role.FRONT_DESK))
    at.switch_page("../pages/patients.py")
    at.query_params["q"] = "Sara"
    at.query_params["patient"] = str(sara)
    at.run()
    assert not at.exception, at.exception

    history = next(frame for frame in at.dataframe if "What" in frame.value.columns)
    assert not any("What" in frame.value.columns for column in at.columns for frame in column.dataframe)
    assert history.value.columns.tolist() == ["When (Asia/Riyadh)", "What", "From", "To", "Source", "By", "Reason"]
    columns = json.loads(history.proto.columns)
    assert columns["Reason"]["width"] == "large" and columns["By"]["width"] == 120
    assert history.value.to_dict("records")[0]["Reason"] == "patient asked at the desk"
