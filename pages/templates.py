"""Templates: the words patients receive, in English and Arabic.

Everyone who may read templates sees the list, each template's text, versions and usage.
Admins also write new templates, edit (every save is a new version), compare and restore
versions, send a test, duplicate, (de)activate and delete. The views are in ``app/ui/templates/``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st

from app.services.permissions import Permission
from app.ui import cached, feedback, rtl, session
from app.ui.templates import state
from app.ui.templates.template_detail import detail_view
from app.ui.templates.template_editor import editor
from app.ui.templates.template_list import picker, template_table

actor = session.require_actor(Permission.VIEW_TEMPLATES)
can_edit = actor.can(Permission.MANAGE_TEMPLATES)

st.title("Templates", anchor=False)
rtl.style_arabic_inputs()
st.caption("The words patients receive, in English and Arabic. Every save keeps the earlier versions."
           if can_edit else "The words patients receive, in English and Arabic. Only admins can change them.")
feedback.show_flash("templates")

everything = feedback.attempt(lambda: state.summaries(actor))
clinic = feedback.attempt(lambda: cached.clinic(actor))
if everything is None or clinic is None:
    st.stop()
local = ZoneInfo(clinic.timezone)

if template_table(actor, everything, local) is None:
    st.stop()
chosen = picker(everything, can_edit)

st.divider()
if chosen == state.NEW:
    st.subheader("New template", anchor=False)
    editor(None)
elif chosen:
    detail_view(actor, chosen, local)
else:
    st.caption("Choose a template above to read it" + (", or start a new one." if can_edit else "."))
