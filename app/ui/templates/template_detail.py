"""One template: its name and state, then tabs: the text with a preview, the versions (compare,
read, restore), usage, WhatsApp (for WhatsApp templates) and, for admins, edit, a test send and
manage."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

import streamlit as st

from app.services import templates
from app.services.permissions import Actor, Permission
from app.services.templates import BodyCheck, TemplateDetail
from app.ui import feedback, rtl, times
from app.ui.templates.display import ARABIC_EMPTY, class_label, show_check, show_ltr, show_preview
from app.ui.templates.state import cached_detail, cached_usage, open_next
from app.ui.templates.template_actions import manage_tab, test_tab
from app.ui.templates.template_editor import editor
from app.ui.templates.template_whatsapp import whatsapp_tab
from app.ui.text import plain
from db.enums import Channel, Language


def detail_view(actor: Actor, template_id: str, local: ZoneInfo) -> None:
    """The template ``template_id`` (from the picker) with the tabs ``actor`` may use."""
    can_edit = actor.can(Permission.MANAGE_TEMPLATES)
    detail = feedback.attempt(lambda: cached_detail(actor, uuid.UUID(template_id)))
    if detail is None:
        return
    state = "active" if detail.is_active else "inactive"
    st.subheader(plain(detail.name), anchor=False)
    st.caption(f"{plain(detail.code)} · {detail.channel.label} · {class_label(detail.message_class)} · {state} · "
               f"version {detail.current_version}")
    if detail.description:
        show_ltr(detail.description)
    names = ["Text", "Versions", "Usage"] + (["WhatsApp"] if detail.channel == Channel.WHATSAPP else []) + (
        ["Edit", "Send a test", "Manage"] if can_edit else [])
    tabs = dict(zip(names, st.tabs(names), strict=True))
    with tabs["Text"]:
        text_tab(detail)
    with tabs["Versions"]:
        versions_tab(detail, local, can_edit)
    with tabs["Usage"]:
        usage_tab(actor, detail, local)
    if "WhatsApp" in tabs:
        with tabs["WhatsApp"]:
            whatsapp_tab(detail, local, can_edit)
    if can_edit:
        with tabs["Edit"]:
            editor(detail)
        with tabs["Send a test"]:
            test_tab(detail)
        with tabs["Manage"]:
            manage_tab(detail)




def text_tab(detail: TemplateDetail) -> None:
    """Both texts as saved, their counters, the variables used and the preview with sample data."""
    def check(source: str, language: Language) -> BodyCheck:
        return templates.check_body(detail.channel, source, language=language, custom_variables=detail.variables)

    english, arabic = check(detail.body_en, Language.EN), check(detail.body_ar, Language.AR)
    is_email = detail.channel == Channel.EMAIL
    english_column, arabic_column = st.columns(2)
    with english_column:
        st.markdown("**English**")
        if is_email:
            st.caption("Subject")
            st.code(detail.subject_en, language=None, wrap_lines=True)
            st.caption("Text")
        st.code(detail.body_en, language=None, wrap_lines=True)
        show_check(english)
    with arabic_column:
        st.markdown("**Arabic**")
        if is_email and detail.subject_ar:
            st.caption("Subject")
            rtl.show_source(detail.subject_ar)
            st.caption("Text")
        rtl.show_source(detail.body_ar, empty=ARABIC_EMPTY)
        if detail.body_ar.strip():
            show_check(arabic)
    if detail.variables:
        st.caption("Variables used: " + ", ".join(plain(name) for name in detail.variables))
    st.markdown("##### Preview with sample data")
    subjects = (check(detail.subject_en, Language.EN), check(detail.subject_ar, Language.AR)) if is_email else None
    show_preview(english, arabic, detail.body_ar, subjects)


def versions_tab(detail: TemplateDetail, local: ZoneInfo, can_edit: bool) -> None:
    """Every saved version; compare two, read one, and (admins) restore it as a new version."""
    saved = times.heading("Saved", local)
    st.dataframe(
        [{"Version": v.version, "Note": v.note or "—", saved: times.local(v.created_at, local), "By": v.created_by}
         for v in reversed(detail.versions)],
        hide_index=True,
        column_config={saved: times.column()},
    )
    numbers = [v.version for v in detail.versions]
    if len(numbers) > 1:
        st.markdown("##### Compare two versions")
        older, newer = st.columns(2)
        version_a = older.selectbox("From version", numbers, index=len(numbers) - 2, key=f"diff_a_{detail.id}")
        version_b = newer.selectbox("To version", numbers, index=len(numbers) - 1, key=f"diff_b_{detail.id}")
        diff = feedback.service(templates.diff_versions, detail.id, version_a, version_b)
        if diff is not None:
            st.code(diff, language="diff", wrap_lines=True)

    st.markdown("##### Read an earlier version")
    chosen = st.selectbox("Version", list(reversed(numbers)), key=f"read_version_{detail.id}")
    old = feedback.service(templates.get_version, detail.id, chosen)
    if old is None:
        return
    by = f" by {plain(old.created_by)}" if old.created_by else ""
    st.caption(f"Version {old.version}, saved {times.clinic_time(old.created_at, local)}{by}"
               + (f": {plain(old.note)}" if old.note else "."))
    english_column, arabic_column = st.columns(2)
    with english_column:
        if old.subject_en:
            st.code(old.subject_en, language=None, wrap_lines=True)
        st.code(old.body_en, language=None, wrap_lines=True)
    with arabic_column:
        if old.subject_ar:
            rtl.show_source(old.subject_ar)
        rtl.show_source(old.body_ar, empty=ARABIC_EMPTY)
    if can_edit and chosen != detail.current_version:
        if st.button(f"Restore version {chosen}", icon=":material/history:", key=f"restore_{detail.id}"):
            restored = feedback.service(templates.restore_version, detail.id, chosen)
            if restored is not None:
                open_next(str(restored.id), "templates",
                          f"Version {chosen} restored as version {restored.current_version}.")


def usage_tab(actor: Actor, detail: TemplateDetail, local: ZoneInfo) -> None:
    """Messages sent with the template, delivered and failed, and messages per version."""
    usage = feedback.attempt(lambda: cached_usage(actor, detail.id))
    if usage is None:
        return
    sent, delivered, failed, rate, last = st.columns(5)
    sent.metric("Messages sent", f"{usage.messages_sent:,}", border=True)
    delivered.metric("Delivered", f"{usage.delivered:,}", border=True)
    failed.metric("Failed", f"{usage.failed:,}", border=True)
    rate.metric("Delivery rate", "—" if usage.delivery_rate is None else f"{usage.delivery_rate:.1%}", border=True)
    last.metric("Last used", "—" if usage.last_used_at is None else
                times.clinic_time(usage.last_used_at, local, date_only=True, label=False), border=True)
    st.caption("Test sends, cancelled and suppressed messages are left out.")
    if usage.per_version:
        st.markdown("##### Messages per version")
        st.bar_chart(
            {"Version": [f"v{v.version}" for v in usage.per_version],
             "Messages": [v.messages for v in usage.per_version]},
            x="Version", y="Messages",
        )
    else:
        st.caption("No messages were sent with this template yet.")
