"""Fixtures of the browser tests: the running app (its own SQLite database and test clinic), one
Chromium per module and a fresh 1,400 x 900 tab per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from db.migrate import upgrade
from db.session import make_engine
from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAILED_PATIENT,
    TIMEOUT_MS,
    USERS,
    running_app,
    sync_api,
)
from tests.factories import make_message, make_patient, make_tenant, make_user


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The running app, against its own migrated database holding one clinic and one user per role."""
    folder = tmp_path_factory.mktemp("browser")
    database_url = f"sqlite:///{folder / 'clinic.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    tenant_id = make_tenant(engine, "al-noor", "Al Noor Clinic")
    for role, username in USERS.items():
        make_user(engine, tenant_id, username, role)
    patient_id = make_patient(engine, tenant_id, name_en=FAILED_PATIENT, phone="+966501234567")
    make_message(engine, tenant_id, recipient="+966501234567", patient_id=patient_id, body="See you tomorrow.")
    make_message(engine, tenant_id, recipient="+966501234567", patient_id=patient_id, status="failed",
                 error_code="30003", body="Your results are ready.")
    engine.dispose()
    with running_app(database_url, folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()
