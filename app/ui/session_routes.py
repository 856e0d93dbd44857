"""The app's own HTTP routes that set and clear the sign-in cookie (mounted by ``app/streamlit_app.py``).

- ``POST /_app/session`` (form field ``token``): redeems a sign-in's one-time token
  (``staff_sessions.redeem``) and answers 204 with the cookie; 403 without a valid XSRF token or
  from another site, 410 for a token that is unknown, used or expired.
- ``POST /_app/session/end``: ends the cookie's session (``staff_sessions.end_by_cookie``) and clears
  the cookie; 204 (also when there was nothing to end), 403 without a valid XSRF token.

The cookie holds only an opaque random secret: ``HttpOnly``, ``SameSite=Lax``, the app's path,
``Secure`` when ``SESSION_COOKIE_SECURE`` is set, and it lives as long as the absolute expiry.
Both routes demand Streamlit's XSRF token (header ``X-Xsrftoken`` matching its ``_streamlit_xsrf``
cookie), as Streamlit's own uploads do, so no other site can sign a browser in or out.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from streamlit import config as streamlit_config
from streamlit.web.server.server_util import is_xsrf_enabled
from streamlit.web.server.starlette.starlette_app_utils import validate_xsrf_token

from app.config import get_settings
from app.database import engine_for
from app.services import staff_sessions

XSRF_COOKIE = "_streamlit_xsrf"


def routes() -> list[Route]:
    """The routes, under Streamlit's ``server.baseUrlPath`` when one is set."""
    base = _base_path()
    return [
        Route(f"{base}/_app/session", start_session, methods=["POST"]),
        Route(f"{base}/_app/session/end", end_session, methods=["POST"]),
    ]


def _base_path() -> str:
    base = str(streamlit_config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def _engine():  # type: ignore[no-untyped-def]
    return engine_for(get_settings().database_url)


def _trusted(request: Request) -> bool:
    """The request comes from a page of this app: Streamlit's XSRF token, and no other site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    if not is_xsrf_enabled():
        return True
    return validate_xsrf_token(request.headers.get("X-Xsrftoken"), request.cookies.get(XSRF_COOKIE))


async def start_session(request: Request) -> Response:
    if not _trusted(request):
        return Response("Refused.", status_code=403)
    token = str((await request.form()).get("token") or "")
    secret = await run_in_threadpool(staff_sessions.redeem, _engine(), token)
    if secret is None:
        return Response("This sign-in link is used or expired.", status_code=410)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        staff_sessions.COOKIE_NAME, secret, max_age=staff_sessions.SessionPolicy.from_settings().absolute_hours * 3600,
        path=_base_path() or "/", secure=get_settings().session_cookie_secure, httponly=True, samesite="lax",
    )
    return response


async def end_session(request: Request) -> Response:
    if not _trusted(request):
        return Response("Refused.", status_code=403)
    await run_in_threadpool(staff_sessions.end_by_cookie, _engine(), request.cookies.get(staff_sessions.COOKIE_NAME))
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.delete_cookie(
        staff_sessions.COOKIE_NAME, path=_base_path() or "/", secure=get_settings().session_cookie_secure,
        httponly=True, samesite="lax",
    )
    return response
