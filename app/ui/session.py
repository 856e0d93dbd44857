"""Who is signed in to this browser tab: sign-in, sign-out, the sign-in cookie, account changes.

A sign-in is a server-side session (``app.services.staff_sessions``). This tab keeps which one in
``st.session_state`` (with the signed-in ``Actor``); a reload, a new tab or a link finds it by the
HttpOnly cookie the browser carries (``st.context.cookies``). The cookie is set and cleared by the
app's own HTTP routes (``app.ui.session_routes``): after a sign-in this tab hands the browser a
one-time token to redeem for it, after a sign-out asks it to drop it (``carry_to_browser``).

On every rerun the entry script calls ``current_actor``, which checks the session and re-reads the
user: idle or absolute expiry, a sign-out in another tab, a password reset, a deactivation or a
role change sign this tab out at the next click, with a notice.

After an admin's password reset, a correct sign-in leaves no actor but a pending password change
(``pending_password_change``): the sign-in screen then asks for a new password and nothing else.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import streamlit as st
from sqlalchemy import Engine

from app.config import get_settings
from app.database import engine_for
from app.errors import AuthenticationError, ConfigurationError
from app.services import auth, staff_sessions
from app.services.permissions import Actor, Permission
from app.ui import session_cookie
from db.session import tenant_session
from db.tenancy import TenantSession

ACTOR_KEY = "auth.actor"
SESSION_KEY = "auth.session"  # staff_sessions.SessionRef
METHOD_KEY = "auth.method"
NOTICE_KEY = "auth.notice"
PENDING_KEY = "auth.pending_password_change"
# (value, until): what the browser is asked for on every run until it is done or too late
HANDOFF_KEY = "auth.handoff"  # a fresh sign-in's one-time token, for the browser to redeem
DROP_COOKIE_KEY = "auth.drop_cookie"  # after a sign-out: ask the browser to drop the cookie
DEAD_COOKIE_KEY = "auth.dead_cookie"  # the hash of a cookie whose session is over (not looked up again)

ACCOUNT_CHANGED_NOTICE = auth.ACCOUNT_CHANGED

P = ParamSpec("P")
T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _engine(database_url: str) -> Engine:
    return engine_for(database_url)


@st.cache_resource(show_spinner=False)
def _embedded_delivery(database_url: str) -> bool:
    from app.delivery.embedded import start_embedded_worker
    from app.services.maintenance import run_pass

    return start_embedded_worker(run_pass)


def start_delivery() -> bool:
    """Without Redis, run deliveries on threads of this process (once per process)."""
    return _embedded_delivery(get_settings().database_url)


def engine() -> Engine:
    """The process's database engine, built once and shared by every browser session.

    Sessions (units of work) are never cached: each service call opens its own.
    """
    return _engine(get_settings().database_url)


# --- reading the signed-in user ---------------------------------------------------------------


def current_actor(engine: Engine, *, now: dt.datetime | None = None) -> Actor | None:
    """The signed-in staff member, freshly read from the database, or None when signed out.

    This tab's session, or else the one the browser's cookie names (a reload, a new tab, a link).
    Signs the tab out, saying why on the sign-in screen, when the session was idle longer than
    ``SESSION_IDLE_MINUTES``, is older than ``SESSION_ABSOLUTE_HOURS``, was signed out elsewhere,
    or an admin reset the password, deactivated or deleted the account or changed its role
    (``staff_sessions.check``, which audits the end). Otherwise this rerun counts as activity.
    """
    ref: staff_sessions.SessionRef | None = st.session_state.get(SESSION_KEY)
    from_cookie = ref is None
    if ref is None:
        ref = _session_of_cookie(engine)
        if ref is None:
            st.session_state.pop(ACTOR_KEY, None)
            return None
    result = staff_sessions.check(engine, ref, now=now)
    if isinstance(result, staff_sessions.Ended):
        notice = _ended_notice(result.reason)
        _forget(notice=None if from_cookie and result.reason == staff_sessions.SIGNED_OUT else notice)
        _bury_cookie()
        return None
    st.session_state[METHOD_KEY] = ref.method
    st.session_state[SESSION_KEY] = ref
    st.session_state[ACTOR_KEY] = result
    return result


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(staff_sessions.COOKIE_NAME)
    except Exception:  # noqa: BLE001 - no browser request behind this run (a test harness)
        return None
    return value if isinstance(value, str) and value else None


def _session_of_cookie(engine: Engine) -> staff_sessions.SessionRef | None:
    cookie = _cookie()
    if not cookie or st.session_state.get(DEAD_COOKIE_KEY) == staff_sessions.digest(cookie):
        return None
    return staff_sessions.find(engine, cookie)


def _bury_cookie() -> None:
    """This tab's request carries a cookie whose session is over: never look it up again here, and
    ask the browser to drop it."""
    cookie = _cookie()
    if cookie:
        st.session_state[DEAD_COOKIE_KEY] = staff_sessions.digest(cookie)
        _ask_browser(DROP_COOKIE_KEY, secrets.token_urlsafe(8))


def _ended_notice(reason: str) -> str:
    policy = staff_sessions.SessionPolicy.from_settings()
    return {
        staff_sessions.TIMED_OUT: f"You were signed out after {policy.idle_minutes} minutes without activity.",
        staff_sessions.EXPIRED: f"You were signed out: a sign-in lasts at most {policy.absolute_hours} hours.",
        staff_sessions.ACCOUNT_CHANGED: ACCOUNT_CHANGED_NOTICE,
    }.get(reason, "You were signed out (in another tab or window).")


def require_actor(permission: Permission | None = None) -> Actor:
    """For pages: the signed-in actor; stops the page if nobody is signed in or the role may not see it."""
    actor: Actor | None = st.session_state.get(ACTOR_KEY)
    if actor is None:
        st.warning("Please sign in.")
        st.stop()
    if permission is not None and not actor.can(permission):
        st.error(f"Your role ({actor.role.label}) cannot open this page.")
        st.stop()
    return actor


def call(fn: Callable[Concatenate[TenantSession, Actor, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the service ``fn(session, actor, ...)`` for the signed-in user in one unit of work of their clinic.

    The only way a page reaches the service layer: the unit of work commits when ``fn`` returns,
    then the jobs ``fn`` registered (deliveries, expansions, exports) go on the process's queue.
    """
    actor = require_actor()
    with tenant_session(engine(), actor.tenant_id) as session:
        return fn(session, actor, *args, **kwargs)


# --- signing in and out -------------------------------------------------------------------------


def sign_in(engine: Engine, username: str, password: str) -> Actor | auth.PendingPasswordChange:
    """Check the password (``auth.authenticate``) and start a fresh session; raises AuthenticationError.

    When an admin reset the password, nobody is signed in yet: the pending change is kept (and
    returned) and the sign-in screen asks for a new password (``complete_password_change``).
    """
    try:
        actor = auth.authenticate(engine, username, password)
    except auth.PasswordChangeRequired as required:
        _clear_state()
        st.session_state[PENDING_KEY] = required.pending
        return required.pending
    _remember(engine, actor, method="password")
    return actor


def pending_password_change(*, now: dt.datetime | None = None) -> auth.PendingPasswordChange | None:
    """The sign-in waiting for a new password, or None; one left longer than the idle limit is dropped."""
    pending: auth.PendingPasswordChange | None = st.session_state.get(PENDING_KEY)
    if pending is None:
        return None
    policy = auth.LoginPolicy.from_settings()
    if auth.is_idle_expired(pending.issued_at, policy=policy, now=now):
        _forget(notice=f"You were signed out after {policy.idle_minutes} minutes without activity.")
        return None
    return pending


def complete_password_change(engine: Engine, new_password: str) -> bool:
    """Set the new password and sign in. True when the screen moves on: signed in, or back to the
    sign-in form with a notice (the account changed meanwhile, or it took too long); a password the
    policy refuses raises ValidationError and the form stays."""
    pending: auth.PendingPasswordChange | None = st.session_state.get(PENDING_KEY)
    if pending is None:
        return True
    try:
        actor = auth.complete_password_change(engine, pending, new_password)
    except AuthenticationError as err:
        _forget(notice=str(err))
        return True
    _remember(engine, actor, method="password")
    return True


def cancel_password_change() -> None:
    """Back to the sign-in form without choosing a password (the next sign-in asks again)."""
    _forget()


def sign_in_with_sso(engine: Engine, claims: Mapping[str, Any], config: auth.SSOConfig) -> Actor:
    """Start a session for the user the identity provider vouched for (``st.login``)."""
    actor = auth.actor_from_sso(engine, dict(claims), config)
    _remember(engine, actor, method="sso")
    return actor


def sign_out(engine: Engine, *, reason: str = "logout", notice: str | None = None) -> None:
    """End the session everywhere (every tab and browser that carries it), audit it, forget
    everything this tab held and ask the browser to drop the cookie.

    A single sign-on session also ends the identity cookie, so the next visit asks the
    identity provider again instead of signing straight back in.
    """
    actor: Actor | None = st.session_state.get(ACTOR_KEY)
    ref: staff_sessions.SessionRef | None = st.session_state.get(SESSION_KEY)
    method = st.session_state.get(METHOD_KEY)
    if ref is not None:
        staff_sessions.end(engine, ref, actor, reason=reason)
    elif actor is not None:
        auth.record_logout(engine, actor, reason=reason)
    _forget(notice=notice)
    _bury_cookie()
    _ask_browser(DROP_COOKIE_KEY, secrets.token_urlsafe(8))
    if method == "sso":
        st.logout()


def carry_to_browser(*, now: float | None = None) -> None:
    """After a sign-in the browser redeems its one-time token for the cookie; after a sign-out it
    drops the cookie. The entry calls this on every run: the request is drawn on each run of the
    next ``HANDOFF_SECONDS`` (a page that reruns at once could remove it before the browser ran it),
    and the browser sends it once."""
    now = time.monotonic() if now is None else now
    for key, ask in ((HANDOFF_KEY, session_cookie.redeem), (DROP_COOKIE_KEY, session_cookie.drop)):
        pending: tuple[str, float] | None = st.session_state.get(key)
        if pending is None:
            continue
        value, until = pending
        if now > until:
            del st.session_state[key]
        else:
            ask(value)


def _ask_browser(key: str, value: str) -> None:
    st.session_state[key] = (value, time.monotonic() + staff_sessions.HANDOFF_SECONDS)


def pop_notice() -> str | None:
    """The message for the sign-in screen (e.g. why the user was signed out), shown once."""
    return st.session_state.pop(NOTICE_KEY, None)


def _remember(engine: Engine, actor: Actor, *, method: str) -> None:
    """A new session for this sign-in; the browser gets its one-time token on the next run."""
    dead = st.session_state.get(DEAD_COOKIE_KEY)
    _clear_state()
    started = staff_sessions.start(engine, actor, method=method)
    st.session_state[ACTOR_KEY] = actor
    st.session_state[SESSION_KEY] = started.ref
    st.session_state[METHOD_KEY] = method
    _ask_browser(HANDOFF_KEY, started.handoff_token)
    if dead:
        st.session_state[DEAD_COOKIE_KEY] = dead


def _forget(*, notice: str | None = None) -> None:
    dead = st.session_state.get(DEAD_COOKIE_KEY)
    _clear_state()
    if dead:
        st.session_state[DEAD_COOKIE_KEY] = dead
    if notice:
        st.session_state[NOTICE_KEY] = notice


def _clear_state() -> None:
    """Drop every key, widget values included: nothing one user typed survives into the next session."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


# --- single sign-on (off unless secrets.toml has both [auth] and [sso]) ---------------------------


def sso_config() -> auth.SSOConfig | None:
    """How identity-provider claims map to this clinic, or None when single sign-on is not set up."""
    if not st.secrets.load_if_toml_exists():
        return None
    auth_section = st.secrets.get("auth")
    sso_section = st.secrets.get("sso")
    if not auth_section or not sso_section:
        return None
    values = {key: dict(value) if isinstance(value, Mapping) else value for key, value in sso_section.items()}
    try:
        return auth.SSOConfig(**values)
    except TypeError:
        raise ConfigurationError(
            "Single sign-on is set up wrongly: the [sso] section of secrets.toml needs tenant_slug "
            "and may have role_claim, role_map and default_role."
        ) from None
