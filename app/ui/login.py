"""The sign-in screen: username and password, and single sign-on when it is set up.

After an admin's password reset, a correct sign-in shows only the "choose a new password" form
until a new password is set (or the user goes back to the sign-in form).
"""

from __future__ import annotations

import streamlit as st

from app.services import auth
from app.services.passwords import MIN_PASSWORD_LENGTH
from app.ui import feedback, session
from app.ui.text import plain


def sign_in_screen() -> None:
    """What a signed-out visitor sees at any address (``navigation.build_signed_out``)."""
    engine = session.engine()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Clinic Notifications", anchor=False)
        pending = session.pending_password_change()  # first: one that timed out leaves a notice
        notice = session.pop_notice()
        if notice:
            st.info(notice, icon=":material/schedule:")
        if pending is not None:
            choose_new_password(pending)
            return
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


def choose_new_password(pending: auth.PendingPasswordChange) -> None:
    """The only thing a user whose password an admin reset can do: choose their own."""
    engine = session.engine()
    st.subheader("Choose a new password", anchor=False)
    st.info(auth.CHOOSE_NEW_PASSWORD, icon=":material/password:")
    st.caption(f"Account: {plain(pending.username)}")
    with st.form("choose_password"):
        new_password = st.text_input(
            "New password", type="password", key="new_password", autocomplete="new-password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters, not the one your administrator gave you.",
        )
        repeat = st.text_input("Repeat the new password", type="password", key="new_password_confirm",
                               autocomplete="new-password")
        submitted = st.form_submit_button("Set password and sign in", type="primary", icon=":material/login:")
    if submitted:
        if new_password != repeat:
            st.error("The two passwords are not the same.", icon=":material/error:")
        elif feedback.attempt(lambda: session.complete_password_change(engine, new_password)):
            st.rerun()
    if st.button("Back to sign in", icon=":material/arrow_back:", key="cancel_password_change"):
        session.cancel_password_change()
        st.rerun()
