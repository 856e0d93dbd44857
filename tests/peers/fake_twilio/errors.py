"""Twilio's error codes the fake knows and the JSON error body Twilio answers with."""

from __future__ import annotations

from typing import Any

ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"

# code -> (HTTP status, message). "{to}" / "{from}" are filled from the request.
KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable Twilio phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS.",
    ),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21635: (400, "'To' number cannot be a landline."),
    21910: (400, "Invalid From and To pair. From and To should be of the same channel"),
    63014: (400, "This message could not be delivered because the recipient has blocked your business."),
    63016: (
        400,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
}


def twilio_error_body(
    code: int, http_status: int | None = None, message: str | None = None, **fill: str
) -> dict[str, Any]:
    """Twilio's JSON error shape: {"code", "message", "more_info", "status"} (status defaults from KNOWN_ERRORS)."""
    default_status, default_message = KNOWN_ERRORS.get(code, (400, f"Error {code}"))
    text = message if message is not None else default_message
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    status = http_status if http_status is not None else default_status
    return {"code": code, "message": text, "more_info": ERROR_DOCS.format(code=code), "status": status}
