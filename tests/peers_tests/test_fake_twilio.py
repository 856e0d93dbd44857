"""The fake Twilio behaves like Twilio through the official SDK, over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import httpx
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.peers.fake_twilio import (
    DEFAULT_ACCOUNT_SID,
    FakeTwilio,
    FakeTwilioProcess,
    Outcome,
    RecordedRequest,
    max_rate,
    point_client_at,
)
from tests.peers.loadgen import blast
from tests.peers.webhook_receiver import WebhookReceiver

TO = "+15005550006"
FROM = "+15005550001"
SID_RE = re.compile(r"^SM[0-9a-f]{32}$")


def _send(client: Client, to: str = TO, body: str = "Reminder: appointment tomorrow at 10:00", **kw: str):
    return client.messages.create(to=to, from_=FROM, body=body, **kw)


# -- success ----------------------------------------------------------------------------------


def test_create_returns_a_twilio_shaped_message(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    msg = _send(fake_twilio_client, status_callback="https://clinic.example/twilio/status")

    assert SID_RE.match(msg.sid)
    assert msg.status == "queued"
    assert (msg.account_sid, msg.to, msg.from_) == (fake_twilio.account_sid, TO, FROM)
    assert msg.body == "Reminder: appointment tomorrow at 10:00"
    assert msg.num_segments == "1"
    assert msg.price is None and msg.price_unit == "USD"
    assert msg.error_code is None and msg.error_message is None
    assert msg.direction == "outbound-api" and msg.api_version == "2010-04-01"
    assert isinstance(msg.date_created, dt.datetime)
    assert msg.uri == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages/{msg.sid}.json"

    (rec,) = fake_twilio.sends
    assert rec.params == {
        "To": TO, "From": FROM, "Body": "Reminder: appointment tomorrow at 10:00",
        "StatusCallback": "https://clinic.example/twilio/status",
    }  # fmt: skip
    assert (rec.http_status, rec.sid, rec.auth_ok, rec.created) == (201, msg.sid, True, True)
    assert fake_twilio.status_callback_url(msg.sid) == "https://clinic.example/twilio/status"


def test_raw_http_answer_is_201_json_with_rfc2822_dates(fake_twilio: FakeTwilio) -> None:
    response = httpx.post(
        f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "hi"},
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$", data["date_created"])
    assert data["date_sent"] is None and data["price"] is None and data["error_code"] is None


def test_segments_follow_gsm7_and_ucs2(fake_twilio_client: Client) -> None:
    assert _send(fake_twilio_client, body="x" * 160).num_segments == "1"
    assert _send(fake_twilio_client, body="x" * 161).num_segments == "2"
    assert _send(fake_twilio_client, body="موعدك غدا").num_segments == "1"
    assert _send(fake_twilio_client, body="م" * 71).num_segments == "2"
    assert _send(fake_twilio_client, body="{" * 81).num_segments == "2"  # extension chars count twice


def test_messaging_service_whatsapp_template(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    msg = fake_twilio_client.messages.create(
        to="whatsapp:+966500000001",
        messaging_service_sid="MG" + "1" * 32,
        content_sid="HX" + "2" * 32,
        content_variables=json.dumps({"1": "Sara", "2": "10:00"}),
    )
    assert msg.status == "accepted"
    assert msg.from_ is None and msg.num_segments == "0"
    assert msg.messaging_service_sid == "MG" + "1" * 32
    params = fake_twilio.sends[0].params
    assert params["ContentSid"] == "HX" + "2" * 32
    assert json.loads(params["ContentVariables"]) == {"1": "Sara", "2": "10:00"}


def test_scheduled_message_can_be_canceled(fake_twilio_client: Client) -> None:
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    msg = fake_twilio_client.messages.create(
        to=TO, messaging_service_sid="MG" + "1" * 32, body="later", schedule_type="fixed", send_at=send_at
    )
    assert msg.status == "scheduled"
    assert fake_twilio_client.messages(msg.sid).update(status="canceled").status == "canceled"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "text"),
    [
        (21211, 400, "is not a valid phone number"),
        (20429, 429, "Too Many Requests"),
        (21610, 400, "unsubscribed recipient"),
        (21614, 400, "not a valid mobile number"),
        (63016, 400, "outside the allowed window"),
        (20500, 500, "internal server error"),
    ],
)
def test_scripted_error_raises_twilio_rest_exception(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, code: int, http_status: int, text: str
) -> None:
    fake_twilio.script(Outcome.error(code))
    with pytest.raises(TwilioRestException) as info:
        _send(fake_twilio_client)
    assert (info.value.status, info.value.code) == (http_status, code)
    assert text in info.value.msg
    assert fake_twilio.messages == []
    rec = fake_twilio.sends[0]
    assert (rec.outcome, rec.http_status, rec.error_code, rec.created) == ("error", http_status, code, False)


def test_error_body_is_twilio_json_shape(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Outcome.error(21211))
    response = httpx.post(
        f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json",
        data={"To": "+1234", "From": FROM, "Body": "hi"},
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 21211,
        "message": "The 'To' number +1234 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }


def test_wrong_credentials_get_401_20003(fake_twilio: FakeTwilio) -> None:
    client = point_client_at(
        Client(fake_twilio.account_sid, "not-the-token", http_client=TwilioHttpClient(timeout=5)), fake_twilio.base_url
    )
    with pytest.raises(TwilioRestException) as info:
        _send(client)
    assert (info.value.status, info.value.code) == (401, 20003)
    assert fake_twilio.sends[0].outcome == "auth_failed"
    assert fake_twilio.messages == []


def test_missing_body_is_21602_and_consumes_no_script(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    fake_twilio.script(Outcome.error(21610))
    with pytest.raises(TwilioRestException) as info:
        fake_twilio_client.messages.create(to=TO, from_=FROM)
    assert info.value.code == 21602
    with pytest.raises(TwilioRestException) as info:
        _send(fake_twilio_client)
    assert info.value.code == 21610


def test_queue_then_responder_then_per_to_rule(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    fake_twilio.script(Outcome.error(20429), Outcome.success())
    fake_twilio.set_responder(lambda params: Outcome.error(21614) if params["To"].endswith("9") else None)
    fake_twilio.set_outcome_for_to("+15005550002", Outcome.error(21211))
    outcomes = []
    for to in [TO, TO, "+15005550009", "+15005550002", TO]:
        try:
            _send(fake_twilio_client, to=to)
            outcomes.append("ok")
        except TwilioRestException as exc:
            outcomes.append(exc.code)
    assert outcomes == [20429, "ok", 21614, 21211, "ok"]
    assert fake_twilio.count_by_to() == {TO: 3, "+15005550009": 1, "+15005550002": 1}
    assert fake_twilio.count_by_to(created_only=True) == {TO: 2}


# -- timing and the ambiguous cases -----------------------------------------------------------


def test_latency_applies_to_every_request(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    fake_twilio.latency_ms = 200
    start = time.monotonic()
    msg = _send(fake_twilio_client)
    fake_twilio_client.messages(msg.sid).fetch()
    assert time.monotonic() - start >= 0.4
    fake_twilio.latency_ms = 0
    fake_twilio.script(Outcome.slow(150))
    start = time.monotonic()
    _send(fake_twilio_client)
    assert 0.15 <= time.monotonic() - start < 1.0


def test_sdk_timeout_fires_on_accept_then_hang_while_message_exists(fake_twilio: FakeTwilio) -> None:
    client = fake_twilio.client(timeout=0.5)
    fake_twilio.script(Outcome.accept_then_hang(hang_s=3))
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        _send(client)
    assert time.monotonic() - start < 2
    (created,) = fake_twilio.messages  # Twilio has it: a blind retry would text the patient twice
    assert created["to"] == TO and created["status"] == "queued"
    # settle "unknown" by lookup
    found = client.messages.list(to=TO, date_sent_after=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    assert [m.sid for m in found] == [created["sid"]]


def test_accept_then_500_is_an_error_but_the_message_exists(
    fake_twilio: FakeTwilio, fake_twilio_client: Client
) -> None:
    fake_twilio.script(Outcome.accept_then_error())
    with pytest.raises(TwilioRestException) as info:
        _send(fake_twilio_client)
    assert (info.value.status, info.value.code) == (500, 20500)
    assert len(fake_twilio.messages) == 1
    assert fake_twilio.count_by_to(created_only=True) == {TO: 1}


@pytest.mark.parametrize(("outcome", "created"), [(Outcome.drop(), 0), (Outcome.accept_then_drop(), 1)])
def test_dropped_connection_raises_connection_error_without_retry(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, outcome: Outcome, created: int
) -> None:
    fake_twilio.script(outcome)
    with pytest.raises(requests.exceptions.ConnectionError):
        _send(fake_twilio_client)
    assert len(fake_twilio.sends) == 1  # the SDK did not retry behind our back
    assert len(fake_twilio.messages) == created
    assert fake_twilio.sends[0].http_status is None
    assert _send(fake_twilio_client).status == "queued"  # the client recovers on a new connection


def test_hang_without_accept_creates_nothing_before_timeout(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Outcome.hang(hang_s=3))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _send(fake_twilio.client(timeout=0.3))
    assert fake_twilio.messages == []


def test_requests_in_flight_across_reset_do_not_leak_into_the_next_test(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Outcome.hang(hang_s=0.4))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _send(fake_twilio.client(timeout=0.1))
    fake_twilio.reset()
    time.sleep(0.6)  # the hang ends after the reset: Twilio "processing" it must not show up now
    assert fake_twilio.messages == [] and fake_twilio.requests == []


def test_stop_releases_hanging_requests_quickly() -> None:
    fake = FakeTwilio().start()
    fake.script(Outcome.accept_then_hang(hang_s=60))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _send(fake.client(timeout=0.2))
    start = time.monotonic()
    fake.stop()
    assert time.monotonic() - start < 3


# -- lookups ----------------------------------------------------------------------------------


def test_fetch_reports_advanced_status(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    msg = _send(fake_twilio_client)
    assert fake_twilio_client.messages(msg.sid).fetch().status == "queued"
    fake_twilio.advance(msg.sid, "undelivered", error_code=30003, error_message="Unreachable destination handset")
    fetched = fake_twilio_client.messages(msg.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert isinstance(fetched.date_sent, dt.datetime)
    fake_twilio.advance(msg.sid, "delivered", price=-0.0079)
    assert fake_twilio_client.messages(msg.sid).fetch().price == "-0.00790"


def test_fetch_unknown_sid_is_404_20404(fake_twilio_client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        fake_twilio_client.messages("SM" + "0" * 32).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)


def test_list_filters_by_to_and_pages(fake_twilio_client: Client) -> None:
    sids = [_send(fake_twilio_client).sid for _ in range(5)]
    _send(fake_twilio_client, to="+15005550007")
    listed = fake_twilio_client.messages.list(to=TO, page_size=2)
    assert [m.sid for m in listed] == list(reversed(sids))  # newest first, across 3 pages
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert fake_twilio_client.messages.list(to=TO, date_sent_after=tomorrow) == []


def test_content_approval_status(fake_twilio: FakeTwilio, fake_twilio_client: Client) -> None:
    sid = "HX" + "3" * 32
    fake_twilio.set_content_approval(sid, "rejected", name="reminder_ar", rejection_reason="INVALID_FORMAT")
    approval = fake_twilio_client.content.v1.contents(sid).approval_fetch().fetch()
    assert approval.sid == sid
    assert approval.whatsapp["status"] == "rejected"
    assert approval.whatsapp["rejection_reason"] == "INVALID_FORMAT"
    with pytest.raises(TwilioRestException) as info:
        fake_twilio_client.content.v1.contents("HX" + "4" * 32).approval_fetch().fetch()
    assert info.value.status == 404


# -- webhooks ---------------------------------------------------------------------------------


def test_status_callback_is_signed_like_twilio(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, webhook_receiver: WebhookReceiver
) -> None:
    url = webhook_receiver.url("/twilio/status")
    msg = _send(fake_twilio_client, status_callback=url)

    response = fake_twilio.send_status_callback(msg.sid, "delivered", price="-0.00790")
    assert response.status_code == 200
    (hook,) = webhook_receiver.received
    assert hook.signature_valid is True
    assert RequestValidator(fake_twilio.auth_token).validate(url, hook.params, hook.signature)
    assert hook.params["MessageSid"] == hook.params["SmsSid"] == msg.sid
    assert hook.params["MessageStatus"] == hook.params["SmsStatus"] == "delivered"
    assert (hook.params["To"], hook.params["From"]) == (TO, FROM)
    assert hook.params["AccountSid"] == fake_twilio.account_sid
    assert hook.params["ApiVersion"] == "2010-04-01"
    assert (hook.params["Price"], hook.params["PriceUnit"]) == ("-0.00790", "USD")
    assert "ErrorCode" not in hook.params
    assert fake_twilio_client.messages(msg.sid).fetch().status == "delivered"  # advanced too


def test_failed_callback_carries_error_code(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, webhook_receiver: WebhookReceiver
) -> None:
    msg = _send(fake_twilio_client)
    fake_twilio.send_status_callback(msg.sid, "undelivered", error_code=30007, url=webhook_receiver.url("/cb"))
    (hook,) = webhook_receiver.received
    assert hook.params["ErrorCode"] == "30007" and hook.signature_valid


@pytest.mark.parametrize("mode", ["wrong", "none"])
def test_bad_signatures_do_not_validate(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, webhook_receiver: WebhookReceiver, mode: str
) -> None:
    msg = _send(fake_twilio_client)
    url = webhook_receiver.url("/twilio/status")
    response = fake_twilio.send_status_callback(msg.sid, "sent", url=url, signature=mode)  # type: ignore[arg-type]
    assert response.status_code == 403
    (hook,) = webhook_receiver.received
    assert hook.signature_valid is False
    assert not RequestValidator(fake_twilio.auth_token).validate(url, hook.params, hook.signature or "")


def test_signature_over_a_different_public_url_does_not_validate(
    fake_twilio: FakeTwilio, fake_twilio_client: Client, webhook_receiver: WebhookReceiver
) -> None:
    msg = _send(fake_twilio_client)
    response = fake_twilio.send_status_callback(
        msg.sid, "sent", url=webhook_receiver.url("/cb"), sign_url="https://public.example/cb"
    )
    assert response.status_code == 403


def test_inbound_stop_is_signed(fake_twilio: FakeTwilio, webhook_receiver: WebhookReceiver) -> None:
    response = fake_twilio.send_inbound_message(webhook_receiver.url("/twilio/inbound"), TO, FROM, "STOP")
    assert response.status_code == 200
    (hook,) = webhook_receiver.received
    assert hook.signature_valid is True
    assert (hook.params["From"], hook.params["To"], hook.params["Body"]) == (TO, FROM, "STOP")
    assert hook.params["OptOutType"] == "STOP" and hook.params["SmsStatus"] == "received"


# -- rate accounting and throughput -----------------------------------------------------------


def _rec(t: float) -> RecordedRequest:
    return RecordedRequest("POST", "/", "messages.create", {"To": TO}, {}, t, t)


def test_max_rate_counts_the_busiest_window() -> None:
    recs = [_rec(t) for t in (0.0, 0.1, 0.5, 0.99, 1.0, 1.05, 3.0)]
    assert max_rate(recs, 1.0) == 5  # 0.1 .. 1.05
    assert max_rate(recs, 0.1) == 3  # 0.99, 1.0, 1.05
    assert max_rate([], 1.0) == 0


def test_concurrent_throughput_with_200ms_latency(fake_twilio: FakeTwilio) -> None:
    fake_twilio.latency_ms = 200
    result = blast(
        fake_twilio.base_url,
        total=600,
        concurrency=200,
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
    )
    # Requests overlap: one at a time would be 5/s; the bar is 20x that, so a loaded CI box still passes.
    assert result.statuses == {201: 600}
    assert result.rate > 100, f"{result.rate:.0f} requests/s"
    assert len(fake_twilio.messages) == 600
    assert fake_twilio.max_rate(1.0) >= 100
    # each waited its latency; the upper bound only catches a request stuck behind the others (under a
    # parallel suite on 2 cores a response can be a few seconds late without the fake serialising)
    assert all(0.19 < r.responded_monotonic - r.received_monotonic < 10 for r in fake_twilio.sends)  # type: ignore[operator]


# -- separate process -------------------------------------------------------------------------


def test_standalone_process_serves_and_reports(webhook_receiver: WebhookReceiver) -> None:
    with FakeTwilioProcess(latency_ms=20) as proc:
        remote = proc.remote
        assert remote is not None
        client = remote.client(timeout=5)
        url = webhook_receiver.url("/twilio/status")
        msg = _send(client, status_callback=url)
        remote.script(Outcome.error(21211))
        with pytest.raises(TwilioRestException) as info:
            _send(client, to="+1999")
        assert info.value.code == 21211

        recs = remote.requests()
        assert [(r.params["To"], r.http_status) for r in recs] == [(TO, 201), ("+1999", 400)]
        assert recs[0].account_sid == DEFAULT_ACCOUNT_SID and recs[0].sid == msg.sid
        assert remote.count_by_to(created_only=True) == {TO: 1}
        assert remote.stats()["sends"] == 2

        remote.advance(msg.sid, "sent")
        assert client.messages(msg.sid).fetch().status == "sent"
        assert remote.send_status_callback(msg.sid, "delivered") == 200
        (hook,) = webhook_receiver.received
        assert hook.signature_valid and hook.params["MessageStatus"] == "delivered"

        remote.reset()
        assert remote.requests() == [] and remote.messages() == []
