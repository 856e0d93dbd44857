"""Logs never carry patient data or secrets: a full send through the loopback Twilio (send, signed
status callback) and sign-ins, with every logger at DEBUG, leave no phone number, message body,
password or token in the log output."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.errors import AuthenticationError
from app.providers.registry import build_providers
from app.services import auth, messaging
from db.enums import Role
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import call, make_patient, make_tenant, make_user
from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio import FakeTwilio
from worker.webhooks import create_app

PHONE = "+966501234567"
BODY = "Private note for Sara: your biopsy result is ready"
PASSWORD = "a-secret-password-42"


@pytest.fixture
def log_everything(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG for the root and every logger that exists, library loggers with their own level included.

    One exception: SQLAlchemy's engine logger stays at INFO (statements, parameters hidden). Its
    DEBUG level is ``echo="debug"``, a database debugging switch that prints result rows by
    design; docs/operations.md says never to turn it on in production.
    """
    loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    saved = [(logger, logger.level) for logger in loggers]
    caplog.set_level(logging.DEBUG)
    for logger in loggers:
        logger.setLevel(logging.INFO if logger.name.startswith("sqlalchemy.engine") else logging.DEBUG)
    try:
        yield caplog
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


def _assert_clean(text: str, *secrets: str) -> None:
    national = PHONE.removeprefix("+966")
    for secret in (*secrets, PHONE, PHONE.lstrip("+"), national):
        assert secret not in text, f"{secret!r} appeared in the logs"
    assert not re.search(r"\+9665\d{8}", text), "a Saudi mobile number appeared in the logs"


def test_a_full_send_logs_no_number_body_or_token(engine: Engine, fake_twilio: FakeTwilio,
                                                  log_everything: pytest.LogCaptureFixture) -> None:
    caplog = log_everything
    tenant = make_tenant(engine)
    patient = make_patient(engine, tenant, phone=PHONE)
    queue = RecordingQueue()
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    settings = delivery_settings(engine, fake_twilio, public_base_url=server.base_url)
    holder["runtime"] = runtime = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)
    server.start()
    try:
        result = call(engine, tenant, messaging.send, "SMS", patient_id=patient, text=BODY, queue=queue)
        queue.drain(runtime)
        sid = fake_twilio.sends[-1].sid
        assert fake_twilio.send_status_callback(sid, "delivered").status_code == 204
    finally:
        server.stop()

    assert result.recipient == PHONE and fake_twilio.count_by_to() == {PHONE: 1}
    logged = _everything_logged(caplog)
    assert caplog.records, "nothing was logged at all: is capturing working?"
    # (the account SID is an identifier in every request URL, not a secret)
    _assert_clean(logged, BODY, "biopsy", fake_twilio.auth_token)


def test_sign_ins_log_no_password(engine: Engine, log_everything: pytest.LogCaptureFixture) -> None:
    caplog = log_everything
    tenant = make_tenant(engine)
    make_user(engine, tenant, "alice", Role.FRONT_DESK, password=PASSWORD)

    auth.authenticate(engine, "alice", PASSWORD)
    with pytest.raises(AuthenticationError):
        auth.authenticate(engine, "alice", PASSWORD + "-typo")
    with pytest.raises(AuthenticationError):
        auth.authenticate(engine, PASSWORD, PASSWORD)  # a password typed into the username box

    _assert_clean(_everything_logged(caplog), PASSWORD, "$argon2")
