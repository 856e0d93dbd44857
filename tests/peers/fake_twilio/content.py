"""The Content API's approval status of WhatsApp templates (``GET /v1/Content/{HX}/ApprovalRequests``)."""

from __future__ import annotations

import json
from typing import Any

from tests.peers.fake_twilio.store import State


def set_content_approval(
    state: State,
    sid: str,
    status: str = "approved",
    *,
    name: str = "template",
    category: str = "UTILITY",
    rejection_reason: str = "",
    content_type: str = "twilio/text",
) -> None:
    """Make GET /v1/Content/{sid}/ApprovalRequests answer with this WhatsApp approval status."""
    with state.lock:
        state.content[sid] = {
            "account_sid": state.account_sid,
            "sid": sid,
            "url": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests",
            "whatsapp": {
                "type": "whatsapp", "name": name, "category": category, "content_type": content_type,
                "status": status, "rejection_reason": rejection_reason, "allow_category_change": True,
                "flows": None,
            },
        }  # fmt: skip


def approval_request(state: State, sid: str) -> dict[str, Any] | None:
    """The ApprovalRequests resource of content `sid` (a copy), or None when it was never set."""
    with state.lock:
        return json.loads(json.dumps(state.content.get(sid)))
