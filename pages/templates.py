"""Templates: the words patients receive, in English and Arabic.

Everyone who may read templates sees the list, each template's text, versions and usage.
Admins also write new templates, edit (every save is a new version), compare and restore
versions, send a test, duplicate, (de)activate and delete.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.errors import AppError, ConflictError, ValidationError
from app.services import templates, whatsapp_templates
from app.services.permissions import Permission
from app.services.templates import BodyCheck, TemplateDetail, TemplateSummary
from app.ui import cached, feedback, rtl, session
from app.ui.text import as_text, plain
from db.enums import Channel, Language, MessageClass

log = logging.getLogger(__name__)
T = TypeVar("T")

actor = session.require_actor(Permission.VIEW_TEMPLATES)
can_edit = actor.can(Permission.MANAGE_TEMPLATES)

NEW = "new"
OPEN_KEY = "templates_open"  # the picker
NEXT_KEY = "templates.open_next"  # what the picker shows after the next rerun (set after a change)
ARABIC_EMPTY = "The Arabic text is empty: patients who prefer Arabic get the English text."
RESEND_AFTER_SECONDS = 10
ACTIVE_FILTER = {"All": None, "Active": True, "Inactive": False}


# --- cached reads (keyed by clinic and role, dropped after every change) -------------------------


_summaries = cached.clinic_cached(ttl=60)(templates.list_templates)
_detail = cached.clinic_cached(ttl=60)(templates.get_template)
_usage = cached.clinic_cached(ttl=60)(templates.template_usage)


def summaries(channel: str | None = None, active: bool | None = None, search: str = "") -> list[TemplateSummary]:
    return _summaries(actor, channel=channel, active=active, search=search.strip())


def forget() -> None:
    """After a change: drop the cached lists and details."""
    _summaries.clear()
    _detail.clear()
    _usage.clear()


def open_next(template_id: str, slot: str, message: str) -> None:
    """After a successful change: say so, show ``template_id`` (or nothing) and redraw."""
    forget()
    feedback.flash(slot, message)
    st.session_state[NEXT_KEY] = template_id
    st.rerun()


def submit(action: Callable[[], T], slots: dict[str, DeltaGenerator], general: DeltaGenerator) -> T | None:
    """Run a change; a refusal is shown under the field it is about (else under the button)."""
    try:
        return action()
    except ValidationError as err:
        slots.get(err.field or "", general).error(plain(err), icon=":material/error:")
    except ConflictError as err:  # a code already taken
        slots.get("code", general).error(plain(err), icon=":material/error:")
    except AppError as err:
        general.error(plain(err), icon=":material/error:")
    except Exception:  # the user sees a plain message; the log keeps the traceback
        log.exception("unexpected error while saving a template")
        general.error(feedback.GENERIC_ERROR, icon=":material/error:")
    return None


# --- small drawing helpers ---------------------------------------------------------------------


def class_label(value: MessageClass) -> str:
    return value.value.capitalize()


def language_label(value: Language | None) -> str:
    return {None: "The clinic's default", Language.EN: "English", Language.AR: "Arabic"}[value]


def show_ltr(text: str, *, empty: str = "(empty)") -> None:
    """Left-to-right text shown literally (escaped), line breaks kept."""
    if text.strip():
        st.markdown("  \n".join(plain(line) if line.strip() else "" for line in text.splitlines()))
    else:
        st.caption(empty)


def show_check(check: BodyCheck) -> None:
    """The live counter under a text box: encoding, segments, length, cost and problems."""
    parts = [check.encoding]
    if check.channel == Channel.SMS:
        parts.append(f"{check.segments} segment{'s' if check.segments != 1 else ''} "
                     f"of up to {check.per_segment} characters")
    parts.append(f"{check.characters:,} of {check.limit:,} characters")
    parts.append(f"about {check.estimated_cost:.4f} {plain(check.currency)} per message")
    st.caption(" · ".join(parts))
    if check.error:
        st.warning(plain(check.error), icon=":material/warning:")
    for unknown in check.unknown_variables:
        st.warning(plain(unknown.message), icon=":material/help:")
    if check.over_limit:
        st.warning(f"Too long: {check.channel.label} allows at most {check.limit:,} characters.",
                   icon=":material/warning:")
    for warning in check.reply_warnings:  # how the text asks patients to reply (app.reply_lint)
        st.warning(plain(warning), icon=":material/reply:")
    if check.stray_characters_hint:
        st.info(plain(check.stray_characters_hint), icon=":material/lightbulb:")


def show_preview(english: BodyCheck, arabic: BodyCheck, arabic_body: str,
                 subjects: tuple[BodyCheck, BodyCheck] | None = None) -> None:
    """Both languages rendered with sample data, side by side; Arabic right to left."""
    english_column, arabic_column = st.columns(2)
    with english_column:
        st.markdown("**English**")
        if subjects is not None:
            st.caption("Subject")
            show_ltr(subjects[0].preview)
            st.caption("Text")
        show_ltr(english.preview)
    with arabic_column:
        st.markdown("**Arabic**")
        if not arabic_body.strip():
            st.info(ARABIC_EMPTY, icon=":material/translate:")
            show_ltr(english.preview)
            return
        if subjects is not None:
            st.caption("Subject")
            rtl.show(subjects[1].preview if subjects[1].preview else subjects[0].preview)
            st.caption("Text")
        rtl.show(arabic.preview)


def variable_reference() -> None:
    with st.expander("Variables you can use", icon=":material/data_object:"):
        st.caption("Write a variable as {{ patient_name }} or {patient_name}.")
        st.dataframe(
            [{"Variable": v.name, "Meaning": v.meaning, "Example (English)": v.example_en,
              "Example (Arabic)": v.example_ar} for v in templates.variable_reference()],
            hide_index=True,
        )


# --- the editor (admins): new and existing templates -------------------------------------------


def editor(detail: TemplateDetail | None) -> None:
    prefix = "new" if detail is None else f"edit_{detail.id}_{detail.current_version}"

    def key(name: str) -> str:
        return f"{prefix}_{name}"

    slots: dict[str, DeltaGenerator] = {}
    channels = list(Channel)
    classes = list(MessageClass)
    left, right = st.columns(2)
    with left:
        code = st.text_input(
            "Code", value=detail.code if detail else "", key=key("code"), disabled=detail is not None,
            help="2 to 64 characters: lower-case letters, digits, underscore or dash (e.g. appointment_reminder).",
        )
        slots["code"] = st.empty()
        name = st.text_input("Name", value=detail.name if detail else "", key=key("name"))
        slots["name"] = st.empty()
    with right:
        channel = st.selectbox(
            "Channel", channels, index=channels.index(detail.channel) if detail else 0,
            format_func=lambda c: c.label, key=key("channel"), disabled=detail is not None,
        )
        slots["channel"] = st.empty()
        message_class = st.selectbox(
            "Class", classes, index=classes.index(detail.message_class) if detail else 0,
            format_func=class_label, key=key("class"),
            help="Service: appointments and results. Promotional: offers, which patients can opt out of.",
        )
        slots["message_class"] = st.empty()
    st.caption("**What this class means:** " + " ".join(templates.class_rules(message_class, channel)))
    description = st.text_area("Description (for staff only)", value=detail.description if detail else "",
                               key=key("description"), height=68)
    custom_text = st.text_input(
        "Extra variables a bulk send supplies (optional, comma-separated)", key=key("custom"),
        help="Names besides the documented ones, e.g. offer.",
    )
    custom = tuple(part.strip() for part in custom_text.split(",") if part.strip())
    variable_reference()

    is_email = channel == Channel.EMAIL
    english_column, arabic_column = st.columns(2)
    with english_column:
        st.markdown("**English**")
        subject_en = ""
        if is_email:
            subject_en = st.text_input("English subject", value=detail.subject_en if detail else "",
                                       key=key("subject_en"))
            slots["subject_en"] = st.empty()
        body_en = st.text_area("English text", value=detail.body_en if detail else "", key=key("body_en"),
                               height=160)
        english_counter = st.container()
        slots["body_en"] = st.empty()
    with arabic_column:
        st.markdown("**Arabic**")
        subject_ar = ""
        if is_email:
            subject_ar = st.text_input("Arabic subject", value=detail.subject_ar if detail else "",
                                       key=key("subject_ar"))
            slots["subject_ar"] = st.empty()
        body_ar = st.text_area(
            "Arabic text (optional)", value=detail.body_ar if detail else "", key=key("body_ar"), height=160,
            help="The text box shows the text as typed; the preview below shows it right to left.",
        )
        arabic_counter = st.container()
        slots["body_ar"] = st.empty()

    # First pass: which variables the texts use, to offer their sample values.
    used: set[str] = set()
    for source, language in ((body_en, Language.EN), (body_ar, Language.AR),
                             (subject_en, Language.EN), (subject_ar, Language.AR)):
        if source.strip():
            used |= set(templates.check_body(channel, source, language=language, custom_variables=custom).variables)
    overrides = {Language.EN: {}, Language.AR: {}}
    if used:
        with st.expander("Sample values for the preview", icon=":material/edit_note:"):
            defaults = {lang: templates.sample_values(lang, sorted(used)) for lang in (Language.EN, Language.AR)}
            for variable in sorted(used):
                english_sample, arabic_sample = st.columns(2)
                overrides[Language.EN][variable] = english_sample.text_input(
                    f"{plain(variable)} (English)", value=str(defaults[Language.EN][variable]),
                    key=key(f"sample_en_{variable}"))
                overrides[Language.AR][variable] = arabic_sample.text_input(
                    f"{plain(variable)} (Arabic)", value=str(defaults[Language.AR][variable]),
                    key=key(f"sample_ar_{variable}"))

    def check(source: str, language: Language) -> BodyCheck:
        return templates.check_body(channel, source, language=language, custom_variables=custom,
                                    sample_values_override=overrides[language])

    english, arabic = check(body_en, Language.EN), check(body_ar, Language.AR)
    with english_counter:
        show_check(english)
    with arabic_counter:
        if body_ar.strip():
            show_check(arabic)
        else:
            st.caption(ARABIC_EMPTY)

    st.markdown("##### Preview with sample data")
    subjects = (check(subject_en, Language.EN), check(subject_ar, Language.AR)) if is_email else None
    show_preview(english, arabic, body_ar, subjects)

    note = st.text_input("What changed (kept with the version, optional)", key=key("note"), max_chars=500)
    general = st.empty()
    if not st.button("Save", type="primary", icon=":material/save:", key=key("save")):
        return
    if detail is None:
        created = submit(lambda: session.call(
            templates.create_template, code=code, name=name, channel=channel, message_class=message_class,
            description=description, body_en=body_en, body_ar=body_ar, subject_en=subject_en,
            subject_ar=subject_ar, custom_variables=custom, note=note,
        ), slots, general)
        if created is not None:
            feedback.reset_widgets(*[k for k in st.session_state if str(k).startswith("new_")])
            open_next(str(created.id), "templates", f"Created {plain(created.code)} (version 1).")
    else:
        saved = submit(lambda: session.call(
            templates.update_template, detail.id, name=name, message_class=message_class,
            description=description, body_en=body_en, body_ar=body_ar, subject_en=subject_en,
            subject_ar=subject_ar, custom_variables=custom, note=note,
        ), slots, general)
        if saved is not None:
            open_next(str(saved.id), "templates", f"Saved {plain(saved.code)} as version {saved.current_version}.")


# --- the detail of one template ----------------------------------------------------------------


def text_tab(detail: TemplateDetail) -> None:
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
            rtl.show(detail.subject_ar)
            st.caption("Text")
        rtl.show(detail.body_ar, empty=ARABIC_EMPTY)
        if detail.body_ar.strip():
            show_check(arabic)
    if detail.variables:
        st.caption("Variables used: " + ", ".join(plain(name) for name in detail.variables))
    st.markdown("##### Preview with sample data")
    subjects = (check(detail.subject_en, Language.EN), check(detail.subject_ar, Language.AR)) if is_email else None
    show_preview(english, arabic, detail.body_ar, subjects)


def versions_tab(detail: TemplateDetail, local: ZoneInfo) -> None:
    st.dataframe(
        [{"Version": v.version, "Note": v.note, "Saved": v.created_at.astimezone(local), "By": v.created_by}
         for v in reversed(detail.versions)],
        hide_index=True,
        column_config={"Saved": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm")},
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
    st.caption(f"Version {old.version}, saved {old.created_at.astimezone(local):%d %b %Y %H:%M}{by}: "
               f"{plain(old.note)}")
    english_column, arabic_column = st.columns(2)
    with english_column:
        if old.subject_en:
            st.code(old.subject_en, language=None, wrap_lines=True)
        st.code(old.body_en, language=None, wrap_lines=True)
    with arabic_column:
        if old.subject_ar:
            rtl.show(old.subject_ar)
        rtl.show(old.body_ar, empty=ARABIC_EMPTY)
    if can_edit and chosen != detail.current_version:
        if st.button(f"Restore version {chosen}", icon=":material/history:", key=f"restore_{detail.id}"):
            restored = feedback.service(templates.restore_version, detail.id, chosen)
            if restored is not None:
                open_next(str(restored.id), "templates",
                          f"Version {chosen} restored as version {restored.current_version}.")


def usage_tab(detail: TemplateDetail, local: ZoneInfo) -> None:
    usage = feedback.attempt(lambda: _usage(actor, detail.id))
    if usage is None:
        return
    sent, delivered, failed, rate, last = st.columns(5)
    sent.metric("Messages sent", f"{usage.messages_sent:,}", border=True)
    delivered.metric("Delivered", f"{usage.delivered:,}", border=True)
    failed.metric("Failed", f"{usage.failed:,}", border=True)
    rate.metric("Delivery rate", "—" if usage.delivery_rate is None else f"{usage.delivery_rate:.1%}", border=True)
    last.metric("Last used", "—" if usage.last_used_at is None else
                f"{usage.last_used_at.astimezone(local):%d %b %Y}", border=True)
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


def test_tab(detail: TemplateDetail) -> None:
    if not detail.is_active:
        st.info("Only active templates can be sent. Activate it under Manage first.", icon=":material/info:")
    st.caption("Sends the current version through the real delivery pipeline, marked as a test: "
               "it is kept out of the statistics.")
    recipient = st.text_input(
        "Send to (phone number)" if detail.channel != Channel.EMAIL else "Send to (e-mail address)",
        key=f"test_recipient_{detail.id}",
    )
    language = st.selectbox("Language", [None, Language.EN, Language.AR], format_func=language_label,
                            key=f"test_language_{detail.id}")
    overrides: dict[str, str] = {}
    if detail.variables:
        defaults = templates.sample_values(language or Language.EN, detail.variables)
        with st.expander("Sample values", icon=":material/edit_note:"):
            st.caption("Leave a value as it is to use the sample (the clinic's own name and phone by default).")
            for name in detail.variables:
                value = st.text_input(plain(name), value=str(defaults.get(name, "")),
                                      key=f"test_{detail.id}_{name}")
                if value != str(defaults.get(name, "")):
                    overrides[name] = value
    if not st.button("Send test", icon=":material/send:", key=f"test_send_{detail.id}"):
        return
    # A second click while the first is on its way must not send the same test twice.
    request = (detail.current_version, recipient.strip(), language, tuple(sorted(overrides.items())))
    last_key = f"test_last_{detail.id}"
    last = st.session_state.get(last_key)
    if last is not None and last[0] == request and time.monotonic() - last[1] < RESEND_AFTER_SECONDS:
        st.info(f"This test was just sent. To send it again, wait {RESEND_AFTER_SECONDS} seconds.",
                icon=":material/info:")
        return
    result = feedback.service(templates.test_send, detail.id, recipient=recipient, language=language,
                              sample_values_override=overrides)
    if result is not None:
        st.session_state[last_key] = (request, time.monotonic())
        st.success(f"Test message {result.message_id} created; status: {result.status.value}.",
                   icon=":material/check_circle:")
        if result.note:
            st.caption(plain(result.note))


def manage_tab(detail: TemplateDetail) -> None:
    if detail.is_active:
        st.write("Active: it can be sent.")
        if st.button("Deactivate", icon=":material/block:", key=f"deactivate_{detail.id}"):
            if feedback.service(templates.set_active, detail.id, False):
                open_next(str(detail.id), "templates", f"{plain(detail.code)} is no longer sent.")
    else:
        st.write("Inactive: it cannot be sent until it is activated.")
        if st.button("Activate", icon=":material/check_circle:", key=f"activate_{detail.id}"):
            if feedback.service(templates.set_active, detail.id, True):
                open_next(str(detail.id), "templates", f"{plain(detail.code)} can be sent again.")

    st.markdown("##### Duplicate")
    slots: dict[str, DeltaGenerator] = {}
    new_code = st.text_input("New code", value=f"{detail.code}_copy"[:64], key=f"copy_code_{detail.id}")
    slots["code"] = st.empty()
    new_name = st.text_input("New name", value=f"{detail.name} (copy)", key=f"copy_name_{detail.id}")
    slots["name"] = st.empty()
    general = st.empty()
    if st.button("Duplicate", icon=":material/content_copy:", key=f"duplicate_{detail.id}"):
        copy = submit(lambda: session.call(templates.duplicate_template, detail.id, new_code=new_code,
                                           new_name=new_name), slots, general)
        if copy is not None:
            open_next(str(copy.id), "templates", f"Copied {plain(detail.code)} to {plain(copy.code)}.")

    st.markdown("##### Delete")
    st.write("Deleting hides the template everywhere; messages already sent keep it. The code can be reused.")
    typed = st.text_input(f"Type the code {plain(detail.code)} to confirm", key=f"delete_confirm_{detail.id}")
    if st.button("Delete template", icon=":material/delete:", key=f"delete_{detail.id}",
                 disabled=typed.strip() != detail.code):
        deleted = feedback.attempt(lambda: session.call(templates.delete_template, detail.id) or True)
        if deleted:
            open_next("", "templates", f"Deleted {plain(detail.code)}.")


def whatsapp_tab(detail: TemplateDetail, local: ZoneInfo) -> None:
    """The linked Content template (what WhatsApp approved), its approval, and the SMS fallback."""
    link = feedback.service(whatsapp_templates.get_whatsapp_link, detail.id)
    if link is None:
        return
    st.caption("Outside the 24 hours after a patient last wrote to us, WhatsApp delivers only a template it "
               "approved. Link the Twilio Content template (HX...) that carries this text, and map its numbered "
               "variables to ours. Bulk sends refuse a WhatsApp template that is not approved.")
    feedback.show_flash("whatsapp")
    checked = f" · checked {link.checked_at.astimezone(local).strftime('%d %b %Y, %H:%M')}" if link.checked_at else ""
    status = f"**Approval:** {link.status_label}{checked}"
    (st.success if link.approved else st.warning)(status, icon=":material/verified:" if link.approved else
                                                  ":material/pending:")
    if link.approval_reason:
        st.write("Reason given by WhatsApp:")
        show_ltr(link.approval_reason)
    if link.content_sid and st.button("Refresh approval status", icon=":material/refresh:",
                                      key=f"refresh_approval_{detail.id}"):
        if feedback.service(whatsapp_templates.refresh_approval, detail.id):
            open_next(str(detail.id), "whatsapp", "Asked Twilio for the current approval status.")
    if not can_edit:
        return
    with st.form(f"whatsapp_link_{detail.id}"):
        slots: dict[str, DeltaGenerator] = {}
        content_sid = st.text_input("Content SID", value=link.content_sid or "", key=f"content_sid_{detail.id}",
                                    help="HX followed by 32 hexadecimal characters; empty to unlink.")
        slots["content_sid"] = st.empty()
        mapping = st.text_area("Variables (one per line: number = our variable)",
                               value=whatsapp_templates.format_variable_map(link.variable_map),
                               key=f"variable_map_{detail.id}", help="e.g. 1 = patient_name", height=100)
        slots["variable_map"] = st.empty()
        fallback = st.checkbox("If WhatsApp fails for good (not on WhatsApp, no approved template), send it by SMS",
                               value=link.fallback_channel == Channel.SMS, key=f"fallback_{detail.id}")
        slots["fallback_channel"] = st.empty()
        general = st.empty()
        if st.form_submit_button("Save WhatsApp settings") and submit(
                lambda: session.call(whatsapp_templates.set_whatsapp_link, detail.id, content_sid=content_sid,
                                     variable_map=whatsapp_templates.parse_variable_map(mapping),
                                     fallback_channel=Channel.SMS if fallback else None), slots, general):
            open_next(str(detail.id), "whatsapp", "Saved the WhatsApp settings.")


def detail_view(template_id: str, local: ZoneInfo) -> None:
    detail = feedback.attempt(lambda: _detail(actor, uuid.UUID(template_id)))
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
        versions_tab(detail, local)
    with tabs["Usage"]:
        usage_tab(detail, local)
    if "WhatsApp" in tabs:
        with tabs["WhatsApp"]:
            whatsapp_tab(detail, local)
    if can_edit:
        with tabs["Edit"]:
            editor(detail)
        with tabs["Send a test"]:
            test_tab(detail)
        with tabs["Manage"]:
            manage_tab(detail)


# --- the page ----------------------------------------------------------------------------------

st.title("Templates", anchor=False)
rtl.style_arabic_inputs()
st.caption("The words patients receive, in English and Arabic. Every save keeps the earlier versions."
           if can_edit else "The words patients receive, in English and Arabic. Only admins can change them.")
feedback.show_flash("templates")

everything = feedback.attempt(summaries)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if everything is None or clinic is None:
    st.stop()
local = ZoneInfo(clinic.timezone)

channel_filter, active_filter, search_box = st.columns([1, 1, 2])
channel_choice = channel_filter.selectbox("Channel", [None, *Channel], key="templates_channel",
                                          format_func=lambda c: "All" if c is None else c.label)
active_choice = active_filter.selectbox("Status", list(ACTIVE_FILTER), key="templates_active")
search = search_box.text_input("Search by code or name", key="templates_search")
shown = feedback.attempt(lambda: summaries(
    channel_choice.value if channel_choice else None, ACTIVE_FILTER[active_choice], search))
if shown is None:
    st.stop()
st.dataframe(
    [
        {
            "Code": t.code, "Name": t.name, "Channel": t.channel.label, "Class": class_label(t.message_class),
            "Active": t.is_active, "Version": t.current_version, "Sent": t.messages_sent,
            "Delivery rate": t.delivery_rate,
            "Last used": t.last_used_at.astimezone(local) if t.last_used_at else None,
        }
        for t in shown
    ],
    hide_index=True,
    column_config={
        "Delivery rate": st.column_config.NumberColumn(format="percent",
                                                       help="Delivered out of delivered or failed."),
        "Last used": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
        "Sent": st.column_config.NumberColumn(help="Messages sent with it (test sends left out)."),
    },
)
if not shown:
    st.caption("No templates match." if everything else "Your clinic has no templates yet.")

by_id = {str(t.id): t for t in everything}
options = ["", *([NEW] if can_edit else []), *by_id]
if NEXT_KEY in st.session_state:
    st.session_state[OPEN_KEY] = st.session_state.pop(NEXT_KEY)
elif OPEN_KEY not in st.session_state:
    st.session_state[OPEN_KEY] = st.query_params.get("template", "")
if st.session_state[OPEN_KEY] not in options:
    st.session_state[OPEN_KEY] = ""


def option_label(value: str) -> str:
    if value == NEW:
        return "New template…"
    if value in by_id:
        return f"{as_text(by_id[value].code)} — {as_text(by_id[value].name)}"
    return "Choose a template"


chosen = st.selectbox("Open a template", options, format_func=option_label, key=OPEN_KEY)
if chosen:
    st.query_params["template"] = chosen
elif "template" in st.query_params:
    del st.query_params["template"]

st.divider()
if chosen == NEW:
    st.subheader("New template", anchor=False)
    editor(None)
elif chosen:
    detail_view(chosen, local)
else:
    st.caption("Choose a template above to read it" + (", or start a new one." if can_edit else "."))
