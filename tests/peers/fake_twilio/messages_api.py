"""The Messages API's answers: validating a create, updating a message, listing a page.

The ASGI app (app.py) routes, authenticates and times the request; these functions say what
Twilio would answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tests.peers.fake_twilio.formats import rfc2822, utc_now
from tests.peers.fake_twilio.records import RecordedRequest
from tests.peers.fake_twilio.store import API_VERSION, State


def validate_create(params: Mapping[str, str]) -> int | None:
    """The Twilio error code a create with these form params is refused with, or None."""
    if not params.get("To"):
        return 21604
    if not params.get("From") and not params.get("MessagingServiceSid"):
        return 21603
    if not params.get("Body") and not params.get("ContentSid") and not params.get("MediaUrl"):
        return 21602
    if len(params.get("Body", "")) > 1600:
        return 21617
    to_wa = params["To"].startswith("whatsapp:")
    if params.get("From") and params["From"].startswith("whatsapp:") != to_wa:
        return 21910
    return None


def update_message(state: State, rec: RecordedRequest) -> dict[str, Any]:
    """Apply a POST to a message (cancel a scheduled one, redact the body); returns the resource."""
    assert rec.sid is not None
    with state.lock:
        res = state.get(rec.sid).resource
        if rec.params.get("Status") == "canceled" and res["status"] == "scheduled":
            res["status"] = "canceled"
        if rec.params.get("Body") == "":
            res["body"] = ""
        res["date_updated"] = rfc2822(utc_now())
        return state.snapshot(rec.sid)


def list_page(state: State, rec: RecordedRequest) -> dict[str, Any]:
    """One page of the account's messages, newest first, filtered by To/From/DateSent."""
    q = rec.query
    page_size = int(q.get("PageSize", "50"))
    page = int(q.get("Page", "0"))
    bounds: list[tuple[str, dt.datetime]] = []
    if q.get("DateSent"):
        bounds += [
            (">", _parse_date_filter(q["DateSent"], end_of_day=False)),
            ("<", _parse_date_filter(q["DateSent"], end_of_day=True)),
        ]
    if q.get("DateSent>"):
        bounds.append((">", _parse_date_filter(q["DateSent>"], end_of_day=False)))
    if q.get("DateSent<"):
        bounds.append(("<", _parse_date_filter(q["DateSent<"], end_of_day=True)))
    with state.lock:
        stored = list(state.messages.values())
    matches = []
    for item in reversed(stored):  # newest first
        res = item.resource
        if res["account_sid"] != rec.account_sid:
            continue
        if q.get("To") and res["to"] != q["To"]:
            continue
        if q.get("From") and res["from"] != q["From"]:
            continue
        moment = email.utils.parsedate_to_datetime(res["date_sent"] or res["date_created"])
        if any((op == ">" and moment < b) or (op == "<" and moment > b) for op, b in bounds):
            continue
        matches.append(json.loads(json.dumps(res)))
    chunk = matches[page * page_size : (page + 1) * page_size]
    base = f"/{API_VERSION}/Accounts/{rec.account_sid}/Messages.json"

    def page_uri(n: int) -> str:
        return base + "?" + urlencode({**{k: v for k, v in q.items() if k != "Page"}, "PageSize": page_size, "Page": n})

    has_next = (page + 1) * page_size < len(matches)
    return {
        "messages": chunk,
        "end": page * page_size + max(len(chunk) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1) if has_next else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": page * page_size,
        "uri": page_uri(page),
    }


def _parse_date_filter(value: str, *, end_of_day: bool) -> dt.datetime:
    if "T" in value:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    day = dt.date.fromisoformat(value)
    moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    return moment.replace(tzinfo=dt.UTC)
