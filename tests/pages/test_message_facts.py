"""An opened message's facts say a missing value with one dash, never '- · id -' (issue 19, point 7):
a message refused before any provider took it, and one a provider delivered."""

from __future__ import annotations

import datetime as dt

from streamlit.testing.v1 import AppTest

from tests.factories import make_message, make_patient
from tests.pages.conftest import Clinic, signed_in, texts


def facts_of(at: AppTest) -> str:
    return next(m for m in texts(at.markdown) if "**Provider:**" in m)


def test_missing_facts_are_one_dash_and_present_ones_whole(clinic: Clinic) -> None:
    tenant = clinic.admin.tenant_id
    sara = make_patient(clinic.engine, tenant)  # the neighbouring clinic has a Sara Ali on the same number
    refused = make_message(clinic.engine, tenant, status="failed", error_code="21211", patient_id=sara)
    delivered = make_message(clinic.engine, tenant, patient_id=sara, provider="twilio", provider_message_id="SM123",
                             sent_at=dt.datetime.now(dt.UTC))

    at = signed_in(clinic.front_desk)
    at.switch_page("../pages/messages.py")
    at.query_params["message"] = str(refused)
    at.run()
    assert not at.exception, at.exception
    facts = facts_of(at)
    assert "**Provider:** —" in facts and "**Sender:** —" in facts and "**Price:** —" in facts
    assert "**Bulk send:** —" in facts and "- · id -" not in facts and ": -" not in facts

    at.query_params["message"] = str(delivered)
    at.run()
    assert "**Provider:** twilio · id SM123" in facts_of(at)
