"""The control API of a fake run as its own process (``/_fake/...``, JSON, no auth).

``FakeTwilioRemote`` (remote.py) is its client: read what was recorded, script outcomes, advance
a message, have the fake post a status callback or an incoming message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.peers.fake_twilio.asgi import respond
from tests.peers.fake_twilio.content import set_content_approval
from tests.peers.fake_twilio.records import count_by_to, max_rate
from tests.peers.fake_twilio.store import State
from tests.peers.fake_twilio.webhooks import build_status_callback, inbound_message_params, sign_webhook


async def handle(
    state: State, method: str, path: str, query: Mapping[str, str], body: bytes, send: Callable[..., Any]
) -> None:
    """Answer one control request (400 with the reason when its JSON does not fit)."""
    try:
        data: dict[str, Any] = json.loads(body) if body else {}
        action = (method, path)
        if action == ("GET", "/_fake/requests"):
            since = int(query.get("since", "0"))
            with state.lock:
                recs = [r.to_dict() for r in state.requests[since:]]
            await respond(send, 200, {"requests": recs})
        elif action == ("GET", "/_fake/messages"):
            with state.lock:
                msgs = [{**m.resource, "_status_callback": m.status_callback} for m in state.messages.values()]
            await respond(send, 200, {"messages": json.loads(json.dumps(msgs))})
        elif action == ("GET", "/_fake/stats"):
            window = float(query.get("window_s", "1.0"))
            with state.lock:
                recs = list(state.requests)
                created = len(state.messages)
            await respond(
                send,
                200,
                {
                    "requests": len(recs),
                    "sends": sum(1 for r in recs if r.endpoint == "messages.create"),
                    "created": created,
                    "max_rate": max_rate(recs, window),
                    "count_by_to": count_by_to(recs),
                    "created_by_to": count_by_to(recs, created_only=True),
                },
            )
        elif action == ("POST", "/_fake/reset"):
            state.reset()
            await respond(send, 200, {})
        elif action == ("POST", "/_fake/script"):
            state.script.apply(data)
            if "latency_ms" in data:
                state.latency_ms = float(data["latency_ms"])
            await respond(send, 200, {"queued": len(state.script)})
        elif action == ("POST", "/_fake/advance"):
            res = state.advance(
                data["sid"],
                data["status"],
                error_code=data.get("error_code"),
                error_message=data.get("error_message"),
                price=data.get("price"),
                price_unit=data.get("price_unit"),
            )
            await respond(send, 200, res)
        elif action == ("POST", "/_fake/callback"):
            hook = build_status_callback(
                state,
                data["sid"],
                data["status"],
                error_code=data.get("error_code"),
                url=data.get("url"),
                price=data.get("price"),
                price_unit=data.get("price_unit", "USD"),
                signature=data.get("signature", "valid"),
                sign_url=data.get("sign_url"),
                extra=data.get("extra"),
                advance=data.get("advance", True),
            )
            response = await hook.apost(timeout=float(data.get("timeout", 10.0)))
            await respond(send, 200, {"status_code": response.status_code, "params": hook.params})
        elif action == ("POST", "/_fake/inbound"):
            params = inbound_message_params(
                state.account_sid, data["from"], data["to"], data["body"], data.get("extra")
            )
            hook = sign_webhook(
                state.auth_token,
                data["url"],
                params,
                signature=data.get("signature", "valid"),
                sign_url=data.get("sign_url"),
            )
            response = await hook.apost(timeout=float(data.get("timeout", 10.0)))
            await respond(send, 200, {"status_code": response.status_code, "params": hook.params})
        elif action == ("POST", "/_fake/content"):
            set_content_approval(state, **data)
            await respond(send, 200, {})
        else:
            await respond(send, 404, {"error": f"no control endpoint {method} {path}"})
    except (KeyError, ValueError, TypeError, httpx.HTTPError) as exc:
        await respond(send, 400, {"error": f"{type(exc).__name__}: {exc}"})
