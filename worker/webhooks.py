"""Provider callbacks over HTTP: ``python -m worker.webhooks`` (Starlette on uvicorn).

- ``POST /twilio/status``: Twilio status callbacks. The ``X-Twilio-Signature`` must match the
  exact public URL (``PUBLIC_BASE_URL`` + path + query) and all POST parameters, else 403.
  Signed with the process-wide ``TWILIO_AUTH_TOKEN`` (the operator's account, which may carry
  any clinic's messages), or with the own Twilio auth token of the clinic whose message it is
  (found from ``?mid=`` and the MessageSid; a mid and a MessageSid of two different clinics are
  refused). Applied forward-only and idempotently: a late ``sent`` after ``delivered`` or a
  repeat changes nothing.
- ``POST /twilio/inbound``: incoming SMS/WhatsApp (a WhatsApp quick-reply button too), signed with
  the process-wide token or with the own Twilio auth token of the one clinic that sends from the
  ``To``. Handed to ``app.services.replies.receive.receive_reply``: stored on the clinic's patient
  thread (the same MessageSid twice is one reply), a clear confirm or cancel of the appointment
  awaiting an answer changes it, STOP / START keywords opt out and in as before. Answers with empty
  TwiML (the acknowledgement goes through the normal send path); ``X-Outcome`` says what happened.
- ``POST /unifonic/dlr/{token}``: Unifonic delivery reports (unsigned, so the path carries
  ``UNIFONIC_CALLBACK_TOKEN``); applied forward-only and idempotently, answered 200 so
  Unifonic stops retrying.
- ``/fhir/Appointment``: the clinic systems' appointments API (``worker/fhir_api.py``).
- ``GET /health``: liveness.

Every request body is limited to ``MAX_BODY_BYTES`` while it is read (``BodyLimit``): a declared
Content-Length over the limit is answered 413 before anything is read, and a body without one
(chunked) is refused with 413 as soon as the bytes received pass the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import sys
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.delivery.callbacks import ClinicMismatch, belongs_to, clinic_of_dlr_token, clinic_twilio_token, message_clinic
from app.delivery.fallback import calls_for_fallback, fall_back_to_sms
from app.delivery.runtime import Runtime, get_runtime
from app.delivery.status_batch import StatusReport, apply_many
from app.providers.twilio_provider import TWILIO_STATUS, _decimal, _int
from app.providers.unifonic_provider import parse_delivery_report
from app.services.replies.clinic import number_owner
from app.services.replies.receive import InboundReply, receive_reply
from db.enums import Channel
from worker.fhir_api import ROUTES as FHIR_ROUTES

log = logging.getLogger("webhooks")

MAX_BODY_BYTES = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _public_url(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        url = settings.public_base_url.rstrip("/") + request.url.path
        return url + (f"?{request.url.query}" if request.url.query else "")
    return str(request.url)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime()


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: no request body over ``max_bytes`` is ever held, whatever it claims.

    A Content-Length over the limit is refused before the body is read; otherwise the bytes are
    counted as they arrive and the request is refused once they pass the limit (a chunked body,
    or a Content-Length that lies). Any answer given before the whole body was read (this 413, or
    a handler's early 403) closes the connection, so the rest is never read either.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _refuse(scope, receive, send, 400, "bad Content-Length")
                return
            if length > self.max_bytes:
                await _refuse(scope, receive, send, 413, "request body too large")
                return
        received = 0
        started = False
        body_read = declared in (None, b"0") and b"transfer-encoding" not in headers  # no body at all

        async def limited_receive() -> ASGIMessage:
            nonlocal received, body_read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
                body_read = body_read or not message.get("more_body", False)
            return message

        async def watched_send(message: ASGIMessage) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_read:  # answered early: do not go on reading what the client still sends
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLarge:
            if started:  # a handler answered before it finished reading: nothing more to say
                return
            await _refuse(scope, receive, send, 413, "request body too large")


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    """Answer without reading the rest of the body, and close the connection after the answer."""
    await PlainTextResponse(text, status_code=status, headers={"Connection": "close"})(scope, receive, send)


def _process_token(settings: Settings) -> str | None:
    return settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _valid_signature(request: Request, settings: Settings, params: dict[str, str], tokens: list[str]) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = _public_url(request, settings)
    return any(token and RequestValidator(token).validate(url, params, signature) for token in tokens)


async def _signed_form(request: Request) -> dict[str, str] | None:
    """The form of an inbound message signed with the process-wide token, or with the own Twilio
    token of the one clinic that sends from its ``To`` (found from the routes: no patient data), else None."""
    runtime = _runtime(request)
    params = _form(await request.body())
    if not request.headers.get("X-Twilio-Signature"):
        return None
    if _valid_signature(request, runtime.settings, params, [_process_token(runtime.settings) or ""]):
        return params
    own = await run_in_threadpool(_own_token_of_number, runtime, params)
    return params if own is not None and _valid_signature(request, runtime.settings, params, [own]) else None


def _own_token_of_number(runtime: Runtime, params: dict[str, str]) -> str | None:
    sender = params.get("From", "")
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    clinic = number_owner(runtime.engine, runtime.settings, channel, params.get("To", ""),
                          params.get("MessagingServiceSid", ""))
    return clinic_twilio_token(runtime.engine, runtime.settings, clinic) if clinic is not None else None


async def twilio_status(request: Request) -> Response:
    runtime = _runtime(request)
    params = _form(await request.body())
    message_id, bad_mid = None, False
    if mid := request.query_params.get("mid"):
        try:
            message_id = uuid.UUID(mid)
        except ValueError:
            bad_mid = True
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not await _status_signed(request, runtime, params, message_id, sid):
        return PlainTextResponse("invalid signature", status_code=403)
    if bad_mid:
        return PlainTextResponse("bad mid", status_code=400)
    raw_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    status = TWILIO_STATUS.get(raw_status)
    if not sid or status is None:
        return PlainTextResponse("missing MessageSid or unknown MessageStatus", status_code=400)
    report = StatusReport(
        provider_message_id=sid, status=status, error_code=params.get("ErrorCode") or None,
        price=_decimal(params.get("Price")), price_unit=params.get("PriceUnit") or None,
        segments=_int(params.get("NumSegments")), message_id=message_id,
    )
    outcome = await request.app.state.batcher.submit(runtime.engine, report)
    if outcome == "applied" and report.message_id and calls_for_fallback(status, report.error_code):
        await run_in_threadpool(fall_back_to_sms, runtime, report.message_id, report.error_code)
    return Response(status_code=204, headers={"X-Outcome": outcome})


async def _status_signed(request: Request, runtime: Runtime, params: dict[str, str],
                         message_id: uuid.UUID | None, sid: str | None) -> bool:
    """Signed by the process-wide account (checked first: no database read), else by the own
    Twilio account of the clinic whose message it is (found by one small lookup of its id)."""
    if not request.headers.get("X-Twilio-Signature"):
        return False
    if _valid_signature(request, runtime.settings, params, [_process_token(runtime.settings) or ""]):
        return True
    try:
        own = await run_in_threadpool(_own_token_of_message, runtime, message_id, sid)
    except ClinicMismatch:
        return False
    return own is not None and _valid_signature(request, runtime.settings, params, [own])


def _own_token_of_message(runtime: Runtime, message_id: uuid.UUID | None, sid: str | None) -> str | None:
    clinic = message_clinic(runtime.engine, message_id, sid)
    return clinic_twilio_token(runtime.engine, runtime.settings, clinic) if clinic is not None else None


class StatusBatcher:
    """Groups the callbacks that arrive together so one transaction applies them all.

    Each request is answered only after the transaction holding its report has committed, so
    a 204 still means "recorded"; under load this turns many small transactions into a few
    large ones. At most one batch per process is in the database at a time.
    """

    def __init__(self, max_batch: int = 500, gather_seconds: float = 0.005) -> None:
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self._pending: list[tuple[StatusReport, asyncio.Future[str]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, engine: Engine, report: StatusReport) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((report, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(engine))
        return await future

    async def _drain(self, engine: Engine) -> None:
        while self._pending:
            await asyncio.sleep(self.gather_seconds)  # let the reports arriving together join
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            try:
                outcomes = await run_in_threadpool(apply_many, engine, [report for report, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error (a 500)
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    future.set_result(outcome)


async def twilio_inbound(request: Request) -> Response:
    params = await _signed_form(request)
    if params is None:
        return PlainTextResponse("invalid signature", status_code=403)
    try:
        reply = InboundReply.from_twilio(params)
    except ValueError as exc:
        return PlainTextResponse(f"not an inbound message: {exc}", status_code=400)
    runtime = _runtime(request)
    outcome = await run_in_threadpool(receive_reply, runtime.engine, reply, settings=runtime.settings,
                                      queue=runtime.queue)
    log.info("inbound %s: %s (%s)", reply.provider_message_id, outcome.received, outcome.intent)
    return Response(EMPTY_TWIML, media_type="text/xml", headers={"X-Outcome": outcome.received.value})


async def unifonic_dlr(request: Request) -> Response:
    """Unifonic delivery reports: unsigned, so the path carries a secret token; idempotent.

    The token is the process-wide ``UNIFONIC_CALLBACK_TOKEN`` or a clinic's own (found by its
    hash); a clinic's token only applies reports about that clinic's messages.
    """
    runtime = _runtime(request)
    settings, token = runtime.settings, request.path_params["token"]
    expected = settings.unifonic_callback_token.get_secret_value() if settings.unifonic_callback_token else ""
    clinic = None
    if not (expected and hmac.compare_digest(token, expected)):
        clinic = await run_in_threadpool(clinic_of_dlr_token, runtime.engine, token)
        if clinic is None:
            return PlainTextResponse("unknown callback address", status_code=403)
    body = await request.body()  # at most MAX_BODY_BYTES (BodyLimit)
    try:
        provider_id, status, _when = parse_delivery_report(_form(body))
    except ValueError as exc:
        return PlainTextResponse(f"malformed delivery report: {exc}", status_code=400)
    if clinic is not None and not await run_in_threadpool(belongs_to, runtime.engine, provider_id, clinic):
        return Response(status_code=200, headers={"X-Outcome": "unknown_message"})  # another clinic's message
    report = StatusReport(provider_message_id=provider_id, status=status, provider="unifonic")
    outcome = await request.app.state.batcher.submit(runtime.engine, report)
    return Response(status_code=200, headers={"X-Outcome": outcome})  # 200 stops Unifonic's retries


async def health(_request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(runtime: Callable[[], Runtime] = get_runtime) -> Starlette:
    """The callback service; ``runtime`` supplies the database and settings (tests pass their own)."""
    application = Starlette(routes=[
        Route("/twilio/status", twilio_status, methods=["POST"]),
        Route("/twilio/inbound", twilio_inbound, methods=["POST"]),
        Route("/unifonic/dlr/{token}", unifonic_dlr, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *FHIR_ROUTES,
    ], middleware=[Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)])
    application.state.runtime = runtime
    application.state.batcher = StatusBatcher()
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
