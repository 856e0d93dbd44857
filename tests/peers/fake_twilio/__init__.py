"""A loopback HTTP server that answers like Twilio's REST API, for delivery tests and benchmarks.

The official SDK talks real HTTP to it::

    with FakeTwilio(latency_ms=200) as fake:
        client = fake.client(timeout=5)      # or make_twilio_client(fake.base_url, ...)
        client.messages.create(to=..., from_=..., body=...)

What it serves (all under HTTP Basic auth ``account_sid:auth_token``; a mismatch is 401/20003):

- ``POST /2010-04-01/Accounts/{AC}/Messages.json`` -> 201 Message resource (``SM`` + 32 hex,
  status ``queued``; ``accepted`` with a MessagingServiceSid; ``scheduled`` with
  ScheduleType=fixed). Missing To/From/Body give Twilio's 21604/21603/21602, a body over 1,600
  characters 21617 (``validate_params=False`` turns these checks off).
- ``GET .../Messages/{SM}.json`` -> the message with its current status (see ``advance``).
- ``GET .../Messages.json?To=&From=&DateSent>=&DateSent<=`` -> a page, newest first.
- ``POST .../Messages/{SM}.json`` (Status=canceled, Body="" redaction), ``DELETE`` -> 204.
- ``GET /v1/Content/{HX}/ApprovalRequests`` -> approval status set by ``set_content_approval``.

Each message-create request takes one ``Outcome``: first from the FIFO ``script(...)`` queue,
else from ``set_responder(fn)``, else from a per-``To`` rule, else the default (success).
Outcomes: success, Twilio error (Twilio's JSON error body, so the SDK raises
``TwilioRestException`` with ``.status`` and ``.code``), extra latency, ``hang``, ``drop``
(connection aborted), and the ambiguous ones where the message IS created first:
``accept_then_hang``, ``accept_then_error`` (e.g. 500/20500), ``accept_then_drop``.

``add_account(sid, token)`` serves a second account (a clinic's own): its requests authenticate with
its token, it sees only its messages, and their callbacks are signed with its token.
``set_lookup_outcome(Outcome.error(...))`` answers every fetch/list with that error (429, 500 ...).

Every API request is recorded (``RecordedRequest``: params, monotonic and wall receive time,
outcome, sid), so a benchmark can check the client stayed under a rate with ``max_rate()``.

Run in-process (``FakeTwilio``) or as a separate process::

    python -m tests.peers.fake_twilio --port 8765 --latency-ms 200

which prints ``FAKE_TWILIO_URL=http://127.0.0.1:8765`` and exposes a control API that
``FakeTwilioRemote`` wraps (``FakeTwilioProcess`` starts one and hands you its ``.remote``).

The modules, one job each:

- ``server``: ``FakeTwilio``, the in-process fake and the calls a test makes;
- ``app``: the ASGI app (routing, auth, latency, the misbehaving outcomes);
- ``messages_api``: the Messages API's answers (validate a create, update, list a page);
- ``content``: the Content API's WhatsApp approval status;
- ``scripting``: ``Outcome`` and the rules that pick one for each create;
- ``store``: accounts, recorded requests and created messages with their status;
- ``records``: ``RecordedRequest``, ``count_by_to``, ``max_rate``;
- ``webhooks``: signed status callbacks and incoming messages;
- ``errors``: Twilio's error codes and JSON error body;
- ``sdk``: the official SDK client pointed at a fake;
- ``control``, ``remote``, ``process``: the fake as its own process, its control API and client;
- ``asgi``, ``formats``: plain ASGI plumbing; how Twilio writes SIDs, dates and prices.

Caveats: HTTP only (no TLS); only the endpoints above; list filtering uses ``date_sent`` and
falls back to ``date_created`` for messages not yet sent; ``drop`` reaches into uvicorn's h11
transport (``send.__self__.transport``) and falls back to a 500/20500 answer if that ever changes.
"""

from tests.peers.fake_twilio.app import FakeTwilioApp
from tests.peers.fake_twilio.content import set_content_approval
from tests.peers.fake_twilio.errors import KNOWN_ERRORS, twilio_error_body
from tests.peers.fake_twilio.process import FakeTwilioProcess, main
from tests.peers.fake_twilio.records import RecordedRequest, count_by_to, max_rate
from tests.peers.fake_twilio.remote import FakeTwilioRemote
from tests.peers.fake_twilio.scripting import CREATES_MESSAGE, Outcome, OutcomeKind, Script
from tests.peers.fake_twilio.sdk import make_twilio_client, point_client_at
from tests.peers.fake_twilio.server import FakeTwilio
from tests.peers.fake_twilio.store import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    MESSAGE_STATUSES,
    SENT_OR_LATER,
    State,
    StoredMessage,
)
from tests.peers.fake_twilio.webhooks import (
    SignatureMode,
    SignedWebhook,
    build_status_callback,
    inbound_message_params,
    sign_webhook,
    status_callback_params,
)

__all__ = [
    "API_VERSION",
    "CREATES_MESSAGE",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "KNOWN_ERRORS",
    "MESSAGE_STATUSES",
    "SENT_OR_LATER",
    "FakeTwilio",
    "FakeTwilioApp",
    "FakeTwilioProcess",
    "FakeTwilioRemote",
    "Outcome",
    "OutcomeKind",
    "RecordedRequest",
    "Script",
    "SignatureMode",
    "SignedWebhook",
    "State",
    "StoredMessage",
    "build_status_callback",
    "count_by_to",
    "inbound_message_params",
    "main",
    "make_twilio_client",
    "max_rate",
    "point_client_at",
    "set_content_approval",
    "sign_webhook",
    "status_callback_params",
    "twilio_error_body",
]
