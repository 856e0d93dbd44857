"""The appointments API: HL7 FHIR R4 ``Appointment`` over HTTP, for the clinic's own system.

Mounted in the callback service (``worker.webhooks.create_app``), so ``BodyLimit`` holds it too.

- ``POST /fhir/Appointment``, ``PUT /fhir/Appointment/{source_id}``: create or update one
  appointment, keyed by its id in the clinic's system (201 created, 200 updated or unchanged; the
  body is the stored resource). Status changes and reschedules arrive the same way.
- ``GET /fhir/Appointment/{source_id}``: one appointment as stored, with the patient's answer.
- ``GET /fhir/Appointment?_lastUpdated=gt<instant>&_count=N``: a searchset Bundle of the clinic's
  appointments changed since, oldest change first, with a ``next`` link while there are more.

Every request carries ``Authorization: Bearer <key>`` (``app.services.api_keys``); a key sees and
writes its own clinic only. Errors are FHIR ``OperationOutcome`` resources: 400 not JSON or not a
valid Appointment, 401 no or a wrong key, 404 no such appointment, 415 not JSON, 422 a valid
resource this clinic cannot take; 413 (plain text) comes from ``BodyLimit``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import ConflictError
from app.services import api_keys
from app.services.api_keys import ApiKeyIdentity
from app.services.appointments import fhir
from app.services.appointments.fhir import Issue, ResourceError, UnacceptableResource
from db.session import tenant_session
from db.tenancy import TenantSession

FHIR_JSON = "application/fhir+json"
ACCEPTED_TYPES = frozenset({FHIR_JSON, "application/json"})
T = TypeVar("T")


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(status: int, issues: list[Issue], *, code: str = "invalid",
            headers: dict[str, str] | None = None) -> FhirResponse:
    """An OperationOutcome: one issue per problem, each with the element it is about."""
    body = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": issue.message,
         **({"expression": [issue.expression]} if issue.expression else {})} for issue in issues]}
    return FhirResponse(body, status_code=status, headers=headers)


def _problem(status: int, message: str, *, code: str, expression: str = "",
             headers: dict[str, str] | None = None) -> FhirResponse:
    return outcome(status, [Issue(expression, message)], code=code, headers=headers)


def _unauthorized(reason: str) -> FhirResponse:
    challenge = 'Bearer realm="appointments"' + (', error="invalid_token"' if reason != "missing" else "")
    message = ("Send the clinic's API key as 'Authorization: Bearer <key>'." if reason == "missing"
               else "The API key is not valid: unknown, revoked, or its clinic is not active.")
    return _problem(401, message, code="login", headers={"WWW-Authenticate": challenge})


async def _identify(request: Request) -> ApiKeyIdentity | FhirResponse:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _unauthorized("missing")
    identity = await run_in_threadpool(api_keys.authenticate, request.app.state.runtime().engine, key.strip())
    return identity if identity is not None else _unauthorized("invalid")


async def _in_clinic(request: Request, identity: ApiKeyIdentity,
                     work: Callable[[TenantSession, Any], T]) -> T:
    """``work(session, actor)`` in one unit of work of the key's clinic, in the threadpool. A write
    that met another writer of the same appointment at the same moment is tried once more."""
    engine = request.app.state.runtime().engine

    def run() -> T:
        for attempt in (1, 2):
            try:
                with tenant_session(engine, identity.tenant_id) as session:
                    return work(session, identity.actor())
            except ConflictError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return await run_in_threadpool(run)


def _base_url(request: Request) -> str:
    configured = request.app.state.runtime().settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


async def _payload(request: Request) -> Any | FhirResponse:
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        return _problem(415, f"Send the resource as {FHIR_JSON} (or application/json).", code="not-supported")
    body = await request.body()  # at most MAX_BODY_BYTES (BodyLimit)
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested past reason, a 5,000-digit number
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return _problem(400, f"The body is not JSON{where}.", code="structure")


async def _upsert(request: Request, source_id: str | None) -> Response:
    identity = await _identify(request)
    if isinstance(identity, Response):
        return identity
    payload = await _payload(request)
    if isinstance(payload, Response):
        return payload
    try:
        done = await _in_clinic(request, identity, lambda s, a: fhir.upsert(s, a, payload, source_id=source_id))
    except ResourceError as exc:
        status = 422 if isinstance(exc, UnacceptableResource) else 400
        return outcome(status, list(exc.issues), code="business-rule" if status == 422 else "invalid")
    except ConflictError as exc:
        return _problem(409, str(exc), code="conflict")
    stored_id = done.resource["identifier"][0]["value"]
    headers = {"Location": f"{_base_url(request)}/fhir/Appointment/{quote(stored_id, safe='')}",
               "X-Outcome": _said(done)}
    return FhirResponse(done.resource, status_code=201 if done.created else 200, headers=headers)


def _said(done: fhir.Upserted) -> str:
    return "created" if done.created else "updated" if done.changed else "unchanged"


async def create(request: Request) -> Response:
    return await _upsert(request, None)


async def update(request: Request) -> Response:
    return await _upsert(request, request.path_params["source_id"])


async def read(request: Request) -> Response:
    identity = await _identify(request)
    if isinstance(identity, Response):
        return identity
    source_id = request.path_params["source_id"]
    resource = await _in_clinic(request, identity, lambda s, a: fhir.read(s, a, source_id))
    if resource is None:
        return _problem(404, f"This clinic has no appointment {source_id[:60]!r}.", code="not-found")
    return FhirResponse(resource)


def _since(value: str) -> tuple[dt.datetime, bool]:
    """``gt2026-12-06T10:00:00Z`` -> (that instant, inclusive?); ``ge`` is inclusive."""
    prefix, instant = value[:2], value[2:]
    if prefix not in ("gt", "ge"):
        raise ResourceError([Issue("_lastUpdated", "use gt<instant> or ge<instant>, "
                                                    "e.g. gt2026-12-06T10:00:00Z")])
    try:
        since = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise ResourceError([Issue("_lastUpdated", f"{instant[:40]!r} is not an instant with a time zone, "
                                                    "e.g. 2026-12-06T10:00:00Z")])
    try:
        since = since.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ResourceError([Issue("_lastUpdated", f"{instant[:40]!r} is outside the calendar in UTC")]) from None
    return since, prefix == "ge"


def _count(value: str | None) -> int:
    if value is None:
        return fhir.DEFAULT_COUNT
    if not value.isdigit() or int(value) < 1:
        raise ResourceError([Issue("_count", "a whole number of resources per page, at least 1")])
    return min(int(value), fhir.MAX_COUNT)


async def search(request: Request) -> Response:
    identity = await _identify(request)
    if isinstance(identity, Response):
        return identity
    params = request.query_params
    unknown = sorted(set(params) - {"_lastUpdated", "_count", "_page", "_format"})
    try:
        if unknown:
            raise ResourceError([Issue(name, "this server does not search by it") for name in unknown])
        since, inclusive = _since(params["_lastUpdated"]) if "_lastUpdated" in params else (None, False)
        count = _count(params.get("_count"))
        after = fhir.Cursor.from_token(params["_page"]) if "_page" in params else None
    except ResourceError as exc:
        return outcome(400, list(exc.issues), code="invalid")
    page = await _in_clinic(request, identity, lambda s, a: fhir.changed_since(
        s, a, since, inclusive=inclusive, count=count, after=after))
    base = f"{_base_url(request)}/fhir/Appointment"
    query = {name: params[name] for name in ("_lastUpdated", "_count") if name in params}
    links = [{"relation": "self", "url": f"{base}?{urlencode(dict(params))}" if params else base}]
    if page.next_cursor is not None:
        links.append({"relation": "next", "url": f"{base}?{urlencode({**query, '_page': page.next_cursor.token()})}"})
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": [
        {"fullUrl": f"{base}/{quote(r['identifier'][0]['value'], safe='')}", "resource": r, "search": {"mode": "match"}}
        for r in page.resources]}
    return FhirResponse(bundle)


ROUTES = [
    Route("/fhir/Appointment", create, methods=["POST"]),
    Route("/fhir/Appointment", search, methods=["GET"]),
    Route("/fhir/Appointment/{source_id}", update, methods=["PUT"]),
    Route("/fhir/Appointment/{source_id}", read, methods=["GET"]),
]
