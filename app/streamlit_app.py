"""The staff app: ``python -m streamlit run app/streamlit_app.py``.

A router and a frame. Every rerun: page config, who is signed in (idle timeout, deactivation),
the menu for that user's role, the sidebar, then the chosen page. Signed out, the only page is
the sign-in screen.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts app/ on sys.path; the project root must come first so `app` and `db` import.
_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app.ui import feedback, login, navigation, session  # noqa: E402
from app.ui.text import plain  # noqa: E402

st.set_page_config(page_title="Clinic Notifications", page_icon=":material/sms:", layout="wide")

with feedback.guard():
    engine = session.engine()
    session.start_delivery()
    actor = session.current_actor(engine)

if actor is None:
    current_page = st.navigation([login.page()])
else:
    current_page = navigation.build(actor)
    with st.sidebar:
        st.markdown(f"**{plain(actor.display_name)}**")
        st.caption(f"{plain(actor.username)} · {actor.role.label}")
        st.caption(f"Clinic: {plain(actor.tenant_name)}")
        if st.button("Log out", icon=":material/logout:", key="logout"):
            with feedback.guard():
                session.sign_out(engine)
            st.rerun()

current_page.run()
