"""The staff app: ``python -m streamlit run app/streamlit_app.py``.

Two roles, one file. Imported by the web server (``streamlit run`` finds the ASGI app ``app``
below), it is Streamlit's app with the HTTP routes that set and clear the sign-in cookie
(``app.ui.session_routes``). Run as the script (``__main__``, every rerun), it is a router and a
frame: page config, who is signed in (the sign-in cookie, idle timeout, account changes), the menu
for that user's role, the sidebar, then the chosen page. Signed out, every address shows the
sign-in screen, and after signing in the address opened is the page shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts app/ on sys.path; the project root must come first so `app` and `db` import.
_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

if __name__ != "__main__":
    # Imported by the web server: this same file is the script it serves, next to the cookie routes.
    from app.ui import session_routes

    app = st.App(__file__, routes=session_routes.routes())
else:
    from app.ui import feedback, job_notices, login, navigation, session
    from app.ui.text import plain

    st.set_page_config(page_title="Clinic Notifications", page_icon=":material/sms:", layout="wide")

    with feedback.guard():
        engine = session.engine()
        session.start_delivery()
        actor = session.current_actor(engine)

    if actor is None:
        current_page = navigation.build_signed_out(login.sign_in_screen)
    else:
        current_page = navigation.build(actor)
        job_notices.show()  # a bulk job this user created has ended since they were last told
        with st.sidebar:
            st.markdown(f"**{plain(actor.display_name)}**")
            st.caption(f"{plain(actor.username)} · {actor.role.label}")
            st.caption(f"Clinic: {plain(actor.tenant_name)}")
            if st.button("Log out", icon=":material/logout:", key="logout"):
                with feedback.guard():
                    session.sign_out(engine)
                st.rerun()
            # the browser redeems a sign-in's token for its cookie (last in the sidebar: drawing it
            # or not never moves the page's own elements)
            session.carry_to_browser()

    current_page.run()
    if actor is None:
        session.carry_to_browser()  # after a sign-out the browser drops the cookie (drawn last: nothing moves)
