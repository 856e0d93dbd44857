"""The HTTP routes that set and clear the sign-in cookie (app/ui/session_routes.py), spoken to over
HTTP in-process (Starlette's TestClient): the cookie's attributes, single-use tokens, XSRF, sign-out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

from app.config import get_settings
from app.database import engine_for
from app.services import staff_sessions
from app.services.permissions import Actor
from app.ui import session_routes
from db.enums import Role
from tests.factories import make_tenant, make_user

XSRF = generate_xsrf_token_string()


@pytest.fixture
def http(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    engine_for.cache_clear()
    with TestClient(Starlette(routes=session_routes.routes()), base_url="http://clinic.test") as client:
        client.cookies.set(session_routes.XSRF_COOKIE, XSRF)
        yield client
    get_settings.cache_clear()
    engine_for.cache_clear()


@pytest.fixture
def desk(engine: Engine) -> Actor:
    make_user(engine, make_tenant(engine, "clinic-b", "Al Noor Clinic"), "fatima-b", Role.FRONT_DESK)
    return make_user(engine, make_tenant(engine, "clinic-a", "Al Noor Clinic"), "fatima", Role.FRONT_DESK)


def redeem(http: TestClient, token: str, **headers: str):  # type: ignore[no-untyped-def]
    return http.post("/_app/session", data={"token": token}, headers={"X-Xsrftoken": XSRF, **headers})


def test_the_token_buys_an_http_only_same_site_cookie_once(engine: Engine, http: TestClient, desk: Actor) -> None:
    started = staff_sessions.start(engine, desk)

    answer = redeem(http, started.handoff_token)

    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    value = rest.split(";")[0]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert name == staff_sessions.COOKIE_NAME
    assert {"httponly", "path", "samesite", "max-age"} <= set(attributes)
    assert attributes["samesite"].lower() == "samesite=lax" and attributes["path"] == "Path=/"
    assert attributes["max-age"] == f"Max-Age={12 * 3600}"
    assert "secure" not in attributes  # unless SESSION_COOKIE_SECURE (served over https)
    assert staff_sessions.find(engine, value) == started.ref
    assert answer.headers["cache-control"] == "no-store"

    assert redeem(http, started.handoff_token).status_code == 410  # used
    assert redeem(http, "a-guessed-token").status_code == 410


def test_the_cookie_is_secure_when_the_setting_says_so(engine: Engine, http: TestClient, desk: Actor,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("SESSION_ABSOLUTE_HOURS", "8")
    get_settings.cache_clear()

    answer = redeem(http, staff_sessions.start(engine, desk).handoff_token)

    assert "; secure" in answer.headers["set-cookie"].lower()
    assert f"Max-Age={8 * 3600}" in answer.headers["set-cookie"]


@pytest.mark.parametrize("headers", [
    {"X-Xsrftoken": ""},  # no XSRF token
    {"X-Xsrftoken": generate_xsrf_token_string()},  # another browser's
    {"X-Xsrftoken": XSRF, "Sec-Fetch-Site": "cross-site"},  # another site's page
], ids=["no xsrf", "wrong xsrf", "cross-site"])
def test_a_request_another_site_could_make_is_refused(engine: Engine, http: TestClient, desk: Actor,
                                                      headers: dict[str, str]) -> None:
    started = staff_sessions.start(engine, desk)

    answer = http.post("/_app/session", data={"token": started.handoff_token}, headers=headers)

    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    assert redeem(http, started.handoff_token).status_code == 204  # the refused request did not use it up
    assert http.post("/_app/session/end", headers=headers).status_code == 403
    assert staff_sessions.check(engine, started.ref) == desk


def test_signing_out_ends_the_session_and_clears_the_cookie(engine: Engine, http: TestClient, desk: Actor) -> None:
    started = staff_sessions.start(engine, desk)
    redeem(http, started.handoff_token)
    assert http.cookies.get(staff_sessions.COOKIE_NAME)

    answer = http.post("/_app/session/end", headers={"X-Xsrftoken": XSRF})

    assert answer.status_code == 204
    assert "max-age=0" in answer.headers["set-cookie"].lower() and "httponly" in answer.headers["set-cookie"].lower()
    assert not http.cookies.get(staff_sessions.COOKIE_NAME)
    assert staff_sessions.check(engine, started.ref) == staff_sessions.Ended("logout")
    assert http.post("/_app/session/end", headers={"X-Xsrftoken": XSRF}).status_code == 204  # nothing left: fine


def test_an_expired_token_buys_nothing(engine: Engine, http: TestClient, desk: Actor) -> None:
    started = staff_sessions.start(
        engine, desk, now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=staff_sessions.HANDOFF_SECONDS + 1))

    answer = redeem(http, started.handoff_token)

    assert answer.status_code == 410 and "set-cookie" not in answer.headers


def test_the_browser_script_is_fixed_and_given_only_the_token() -> None:
    """The one component with script (app/ui/session_cookie.py) gets a module constant and its data
    holds only the action, the route and the token or a nonce: never stored or typed text."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sites = []
    for path in [*root.glob("app/**/*.py"), *root.glob("pages/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("v1", "v2") \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "components":
                sites.append(str(path.relative_to(root)))
    assert sites == ["app/ui/session_cookie.py"]
    from app.ui import session_cookie

    module = ast.parse(Path(session_cookie.__file__).read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(module) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "component")
    assert [(k.arg, type(k.value).__name__, getattr(k.value, "id", None)) for k in call.keywords] == \
        [("js", "Name", "_SCRIPT")]
    datas = [k.value for n in ast.walk(module) if isinstance(n, ast.Call) for k in n.keywords if k.arg == "data"]
    assert {tuple(key.value for key in d.keys) for d in datas} == {
        ("action", "path", "token"), ("action", "path", "nonce")}
