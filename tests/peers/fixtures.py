"""pytest fixtures for the loopback peers.

Use from the top-level conftest with ``pytest_plugins = ["tests.peers.fixtures"]``. pytest refuses
``pytest_plugins`` in a nested conftest when the whole suite runs, so a nested conftest imports
the fixtures instead: ``from tests.peers.fixtures import *  # noqa: F403``.

Servers start once per session (per xdist worker) and are reset before every test, so each test
sees an empty, unscripted peer with the default latency.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twilio.rest import Client

from tests.peers.fake_smtp import FakeSMTP
from tests.peers.fake_twilio import FakeTwilio
from tests.peers.webhook_receiver import WebhookReceiver

__all__ = [
    "_fake_smtp_server",
    "_fake_twilio_server",
    "_webhook_receiver_server",
    "fake_smtp",
    "fake_twilio",
    "fake_twilio_client",
    "webhook_receiver",
]


@pytest.fixture(scope="session")
def _fake_twilio_server() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_twilio(_fake_twilio_server: FakeTwilio) -> FakeTwilio:
    """A running FakeTwilio (default credentials, no latency), emptied for this test."""
    _fake_twilio_server.reset()
    return _fake_twilio_server


@pytest.fixture
def fake_twilio_client(fake_twilio: FakeTwilio) -> Client:
    """The official SDK Client pointed at `fake_twilio`, with a 5 s timeout."""
    return fake_twilio.client(timeout=5.0)


@pytest.fixture(scope="session")
def _fake_smtp_server() -> Iterator[FakeSMTP]:
    with FakeSMTP() as smtp:
        yield smtp


@pytest.fixture
def fake_smtp(_fake_smtp_server: FakeSMTP) -> FakeSMTP:
    """A running FakeSMTP (no AUTH), emptied for this test."""
    _fake_smtp_server.reset()
    return _fake_smtp_server


@pytest.fixture(scope="session")
def _webhook_receiver_server(_fake_twilio_server: FakeTwilio) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(auth_token=_fake_twilio_server.auth_token) as receiver:
        yield receiver


@pytest.fixture
def webhook_receiver(_webhook_receiver_server: WebhookReceiver) -> WebhookReceiver:
    """A loopback endpoint validating signatures with `fake_twilio`'s token, emptied for this test."""
    _webhook_receiver_server.clear()
    _webhook_receiver_server.status_code = 200
    return _webhook_receiver_server
