"""The browser's half of the sign-in cookie: a few lines of fixed JavaScript, no markup.

A Streamlit run cannot set a cookie; the app's HTTP routes can (``app.ui.session_routes``). After a
sign-in this asks the browser to POST the one-time token to ``_app/session`` (answered with the
HttpOnly cookie), after a sign-out to POST ``_app/session/end`` (which clears it). Both requests
carry Streamlit's XSRF token, as its own uploads do. The script is a constant; the only data it is
given is the action and the token (or a nonce).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

START_PATH = "_app/session"
END_PATH = "_app/session/end"

# Relative addresses resolve against the page (so a server.baseUrlPath is kept). Each request (its
# token, or a sign-out's nonce) is sent once per page load, however often Streamlit draws it.
_SCRIPT = """
export default function ({ data }) {
  const sent = (window.__clinicSessionSent = window.__clinicSessionSent || new Set());
  const key = data.action + ":" + (data.token || data.nonce);
  if (sent.has(key)) return;
  sent.add(key);
  const xsrf = document.cookie.match(/(?:^|;\\s*)_streamlit_xsrf=([^;]*)/);
  const headers = { "Content-Type": "application/x-www-form-urlencoded" };
  if (xsrf) headers["X-Xsrftoken"] = decodeURIComponent(xsrf[1]);
  const body = new URLSearchParams(data.token ? { token: data.token } : {});
  fetch(new URL(data.path, document.baseURI), {
    method: "POST", headers, body, credentials: "same-origin", cache: "no-store",
  }).catch(() => {});
}
"""


def _component() -> Any:
    # registered on each use: Streamlit keeps one definition per name, per runtime
    return st.components.v2.component("clinic_session_cookie", js=_SCRIPT)


def redeem(token: str) -> None:
    """Have the browser exchange a fresh sign-in's one-time token for the session cookie."""
    _component()(data={"action": "start", "path": START_PATH, "token": token}, key="session_cookie_start")


def drop(nonce: str) -> None:
    """Have the browser end the cookie's session and drop the cookie (once per ``nonce``)."""
    _component()(data={"action": "end", "path": END_PATH, "nonce": nonce}, key="session_cookie_end")
