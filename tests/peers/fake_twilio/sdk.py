"""The official SDK client pointed at a fake: no custom HttpClient, only the domains' base URLs.

twilio 9.x builds every URL as ``domain.base_url + path`` at request time (see
``twilio.base.domain.Domain.absolute_url``), so overriding the domains' ``base_url`` is enough.
"""

from __future__ import annotations

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.peers.fake_twilio.store import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


def make_twilio_client(
    base_url: str, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN, *, timeout: float = 5.0
) -> Client:
    """An official SDK Client whose api/content/messaging domains point at `base_url`, with a timeout."""
    http_client = TwilioHttpClient(timeout=timeout)
    client = Client(account_sid, auth_token, http_client=http_client)
    point_client_at(client, base_url)
    return client


def point_client_at(client: Client, base_url: str) -> Client:
    """Redirect an existing SDK Client to `base_url` (returns it). See this module's docstring."""
    client.edge = None
    client.region = None
    base = base_url.rstrip("/")
    client.api.base_url = base
    client.content.base_url = base
    client.messaging.base_url = base
    http_client = client.http_client
    session = getattr(http_client, "session", None)
    if session is not None:  # same pool settings for http:// as the SDK configures for https://
        session.mount("http://", session.get_adapter("https://"))
    return client
