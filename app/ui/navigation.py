"""The menu: one table of pages, each with the permission a role needs to see it.

Adding a screen is one line in ``MENU`` (plus its file in ``pages/``). A role sees exactly the
pages whose permission it holds (``Actor.can``). Every page's address answers for everyone: the
address of a page a role may not open says so (a hidden page, not in the menu), and signed out
every address shows the sign-in screen, so a link opened before signing in shows what it names
(query string included) once the user has signed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app.services.permissions import Actor, Permission
from app.ui.text import plain
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
    MenuEntry("inbox.py", "Inbox", ":material/inbox:", Permission.WORK_INBOX, "Messaging"),
    MenuEntry("patients.py", "Patients", ":material/group:", Permission.VIEW_PATIENTS, "Patients"),
    MenuEntry("appointments.py", "Appointments", ":material/event:", Permission.VIEW_APPOINTMENTS, "Patients"),
    MenuEntry("templates.py", "Templates", ":material/description:", Permission.VIEW_TEMPLATES, "Messaging"),
    MenuEntry("bulk.py", "Bulk send", ":material/campaign:", Permission.SEND_MESSAGES, "Messaging"),
    MenuEntry("reminders.py", "Reminders", ":material/alarm:", Permission.MANAGE_REMINDERS, "Messaging"),
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
    """Register ``actor``'s menu with ``st.navigation``; returns the page to run.

    The pages the role may not open keep their addresses as hidden pages that say so.
    """
    sections = menu_for(actor)
    allowed = [entry for entries in sections.values() for entry in entries]
    first = next((entry for entry in allowed if entry.file == LANDING.get(actor.role)), allowed[0])
    pages = {
        section: [
            st.Page(
                entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path,
                default=entry is first,
            )
            for entry in entries
        ]
        for section, entries in sections.items()
    }
    refused = [
        st.Page(_refusal(actor, entry), title=entry.title, icon=entry.icon, url_path=entry.url_path,
                visibility="hidden")
        for entry in MENU if entry not in allowed
    ]
    if refused:
        first_section = next(iter(pages))
        pages[first_section] = [*pages[first_section], *refused]
    return st.navigation(pages)


def build_signed_out(sign_in_screen: Callable[[], None]) -> StreamlitPage:
    """Signed out, the sign-in screen answers at its own address and at every page's address
    (hidden pages), so the address stays as opened; once signed in, it is the page that runs."""
    pages = [st.Page(sign_in_screen, title="Sign in", icon=":material/login:", url_path="sign-in", default=True)]
    pages += [st.Page(sign_in_screen, title="Sign in", icon=":material/login:", url_path=entry.url_path,
                      visibility="hidden") for entry in MENU]
    return st.navigation(pages)


def _refusal(actor: Actor, entry: MenuEntry) -> Callable[[], None]:
    def refuse() -> None:
        st.title(plain(entry.title), anchor=False)
        st.error(f"Your role ({actor.role.label}) cannot open {plain(entry.title)}. Choose a page from the menu.",
                 icon=":material/block:")

    refuse.__name__ = f"refuse_{entry.url_path}"
    return refuse
