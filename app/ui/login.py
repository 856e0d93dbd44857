"""The sign-in screen: username and password, and single sign-on when it is set up."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app.ui import feedback, session


def page() -> StreamlitPage:
    """The only page a signed-out visitor can reach."""
    return st.Page(sign_in_screen, title="Sign in", icon=":material/login:", url_path="sign-in", default=True)


def sign_in_screen() -> None:
    engine = session.engine()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Clinic Notifications", anchor=False)
        notice = session.pop_notice()
        if notice:
            st.info(notice, icon=":material/schedule:")
        sso = feedback.attempt(session.sso_config)
        if sso is not None and st.user.get("is_logged_in"):
            # Back from the identity provider: map its claims to a staff account of the clinic.
            if feedback.attempt(lambda: session.sign_in_with_sso(engine, st.user, sso)) is not None:
                st.rerun()
            if st.button("Sign out of single sign-on", icon=":material/logout:"):
                st.logout()
            return
        with st.form("sign_in"):
            st.subheader("Sign in", anchor=False)
            username = st.text_input("Username", key="login_username", autocomplete="username")
            password = st.text_input(
                "Password", type="password", key="login_password", autocomplete="current-password"
            )
            submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
        if submitted and feedback.attempt(lambda: session.sign_in(engine, username, password)) is not None:
            st.rerun()
        if sso is not None:
            st.divider()
            if st.button("Sign in with single sign-on", icon=":material/key:"):
                st.login()
