"""The menu: one table of pages, each with the permission a role needs to see it.

Adding a screen is one line in ``MENU`` (plus its file in ``pages/``). A role sees exactly the
pages whose permission it holds (``Actor.can``); a page that is not in a user's menu is not
registered with ``st.navigation`` for them, so its URL falls back to their landing page
(the Dashboard; Analytics for analysts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app.services.permissions import Actor, Permission
from db.enums import Role

PAGES_DIR = Path(__file__).resolve().parents[2] / "pages"

# Sections in the order the sidebar shows them.
SECTIONS: tuple[str, ...] = ("Overview", "Messaging", "Patients", "Reports", "Administration")


@dataclass(frozen=True)
class MenuEntry:
    file: str  # in pages/
    title: str
    icon: str  # a Material Symbols name, ":material/...:"
    permission: Permission
    section: str

    @property
    def url_path(self) -> str:
        return Path(self.file).stem

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file


MENU: tuple[MenuEntry, ...] = (
    MenuEntry("home.py", "Dashboard", ":material/dashboard:", Permission.VIEW_DASHBOARD, "Overview"),
    MenuEntry("messages.py", "Messages", ":material/forum:", Permission.VIEW_MESSAGES, "Messaging"),
    MenuEntry("patients.py", "Patients", ":material/group:", Permission.VIEW_PATIENTS, "Patients"),
    MenuEntry("templates.py", "Templates", ":material/description:", Permission.VIEW_TEMPLATES, "Messaging"),
    MenuEntry("bulk.py", "Bulk send", ":material/campaign:", Permission.SEND_MESSAGES, "Messaging"),
    MenuEntry("staff.py", "Staff", ":material/badge:", Permission.MANAGE_STAFF, "Administration"),
    MenuEntry("analytics.py", "Analytics", ":material/monitoring:", Permission.VIEW_ANALYTICS, "Reports"),
    MenuEntry("settings.py", "Settings", ":material/settings:", Permission.MANAGE_SETTINGS, "Administration"),
    MenuEntry("audit.py", "Audit log", ":material/policy:", Permission.VIEW_AUDIT, "Administration"),
)

# The page a role lands on when it is not the first page of its menu (analysts report from Analytics).
LANDING: dict[Role, str] = {Role.ANALYST: "analytics.py"}


def menu_for(actor: Actor) -> dict[str, list[MenuEntry]]:
    """The pages ``actor`` may open, grouped by section, in sidebar order."""
    allowed = [entry for entry in MENU if actor.can(entry.permission)]
    return {
        section: entries
        for section in SECTIONS
        if (entries := [entry for entry in allowed if entry.section == section])
    }


def menu_titles(actor: Actor) -> list[str]:
    """The titles of ``actor``'s menu, top to bottom."""
    return [entry.title for entries in menu_for(actor).values() for entry in entries]


def build(actor: Actor) -> StreamlitPage:
    """Register ``actor``'s menu with ``st.navigation``; returns the page to run."""
    sections = menu_for(actor)
    allowed = [entry for entries in sections.values() for entry in entries]
    first = next((entry for entry in allowed if entry.file == LANDING.get(actor.role)), allowed[0])
    return st.navigation(
        {
            section: [
                st.Page(
                    entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path,
                    default=entry is first,
                )
                for entry in entries
            ]
            for section, entries in sections.items()
        }
    )
