"""Provider callbacks over HTTP: ``python -m worker.webhooks`` (Starlette on uvicorn).

- ``POST /twilio/status``: Twilio status callbacks. The ``X-Twilio-Signature`` must match the
  exact public URL (``PUBLIC_BASE_URL`` + path + query) and all POST parameters, else 403.
  Applied forward-only and idempotently: a late ``sent`` after ``delivered`` or a repeat changes
  nothing.
- ``POST /twilio/inbound``: incoming SMS/WhatsApp. STOP-type keywords (English and Arabic)
  opt the sender out of that channel in every clinic that has them as a patient; START-type
  keywords opt back in. Answers with empty TwiML.
- ``GET /health``: liveness.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.delivery.callbacks import apply_provider_status
from app.delivery.optouts import patients_with_phone, set_channel_opt_in
from app.delivery.runtime import Runtime, get_runtime
from app.providers.twilio_provider import TWILIO_STATUS, _decimal, _int
from db.enums import Channel, OptOutSource
from db.session import system_session

log = logging.getLogger("webhooks")

STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt-out",
              "توقف", "إيقاف", "ايقاف", "الغاء", "إلغاء", "الغاء الاشتراك", "إلغاء الاشتراك"}
START_WORDS = {"start", "yes", "unstop", "ابدأ", "ابدا", "بدء", "اشتراك"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def keyword(body: str) -> str | None:
    """'stop' or 'start' when the whole message is an opt-out or opt-in keyword, else None."""
    text = re.sub(r"[\s\.\!\u061f\?]+", " ", body or "").strip().lower()
    if text in STOP_WORDS:
        return "stop"
    if text in START_WORDS:
        return "start"
    return None


def _public_url(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        url = settings.public_base_url.rstrip("/") + request.url.path
        return url + (f"?{request.url.query}" if request.url.query else "")
    return str(request.url)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime()


async def _signed_form(request: Request) -> dict[str, str] | None:
    settings = _runtime(request).settings
    form = await request.form()
    params = {k: str(v) for k, v in form.multi_items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if not signature or not token:
        return None
    if not RequestValidator(token).validate(_public_url(request, settings), params, signature):
        return None
    return params


async def twilio_status(request: Request) -> Response:
    params = await _signed_form(request)
    if params is None:
        return PlainTextResponse("invalid signature", status_code=403)
    sid = params.get("MessageSid") or params.get("SmsSid")
    raw_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    status = TWILIO_STATUS.get(raw_status)
    if not sid or status is None:
        return PlainTextResponse("missing MessageSid or unknown MessageStatus", status_code=400)
    message_id = None
    if mid := request.query_params.get("mid"):
        import uuid

        try:
            message_id = uuid.UUID(mid)
        except ValueError:
            return PlainTextResponse("bad mid", status_code=400)
    outcome = await run_in_threadpool(
        apply_provider_status, _runtime(request).engine, provider_message_id=sid, status=status,
        error_code=params.get("ErrorCode") or None, price=_decimal(params.get("Price")),
        price_unit=params.get("PriceUnit") or None, segments=_int(params.get("NumSegments")),
        message_id=message_id, provider="twilio", source="callback",
    )
    return Response(status_code=204, headers={"X-Outcome": outcome})


def _apply_keyword(engine: Engine, phone: str, channel: Channel, word: str) -> int:
    changed = 0
    with system_session(engine) as session:
        for patient in patients_with_phone(session, phone):
            changed += set_channel_opt_in(
                session, tenant_id=patient.tenant_id, patient_id=patient.id, channel=channel,
                opted_in=word == "start", source=OptOutSource.PATIENT_REPLY,
                reason=f"patient replied {word.upper()}",
            )
    return changed


async def twilio_inbound(request: Request) -> Response:
    params = await _signed_form(request)
    if params is None:
        return PlainTextResponse("invalid signature", status_code=403)
    sender = params.get("From", "")
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    phone = sender.removeprefix("whatsapp:")
    word = keyword(params.get("Body", ""))
    if word and phone:
        changed = await run_in_threadpool(_apply_keyword, _runtime(request).engine, phone, channel, word)
        log.info("inbound %s keyword applied to %d patient record(s)", word, changed)
    return Response(EMPTY_TWIML, media_type="text/xml")


async def health(_request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(runtime: Callable[[], Runtime] = get_runtime) -> Starlette:
    """The callback service; ``runtime`` supplies the database and settings (tests pass their own)."""
    application = Starlette(routes=[
        Route("/twilio/status", twilio_status, methods=["POST"]),
        Route("/twilio/inbound", twilio_inbound, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ])
    application.state.runtime = runtime
    return application


app = create_app()


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m worker.webhooks", description="Provider callback service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run("worker.webhooks:app", host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False, proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
