"""UI glue for the Messages and Patients pages: the filter in the URL, cached counts, table rows."""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app.errors import AppError
from app.services import explorer
from app.services.explorer import Cursor, FilterOptions, MessageDetail, MessageFilter, MessageRow, Total
from app.services.permissions import Actor
from app.ui import times
from app.ui.cached import clinic_cached
from app.ui.text import as_text
from db.enums import MessageStatus

STATUS_BADGES: dict[MessageStatus, str] = {
    MessageStatus.SCHEDULED: "🕒 Scheduled", MessageStatus.QUEUED: "⏳ Queued", MessageStatus.SENDING: "📤 Sending",
    MessageStatus.SENT: "📨 Sent", MessageStatus.DELIVERED: "✅ Delivered", MessageStatus.READ: "👁 Read",
    MessageStatus.FAILED: "❌ Failed", MessageStatus.UNDELIVERED: "⚠️ Undelivered",
    MessageStatus.CANCELLED: "🚫 Cancelled", MessageStatus.SUPPRESSED: "🔕 Suppressed",
    MessageStatus.UNKNOWN: "❓ Unknown",
}
PAGE_KEYS = ("after", "message")  # URL parameters that are not part of the filter
TABLE_KEY = "messages.table"  # a number in the table's widget key: a new number clears its selection
CLICKED_KEY = "messages.clicked"  # (table key, row) last clicked, so a click opens its message once
LIVE_SECONDS = 2  # how often an open message that is still moving is read again


def message_facts(detail: MessageDetail, zone: str | ZoneInfo) -> dict[str, str]:
    """The facts at the top of an opened message, in words: a dash for what is not there (yet), one
    dash for all of them; times in the clinic's zone, labelled."""
    dash = times.DASH
    provider = detail.provider or dash
    if detail.provider and detail.provider_message_id:
        provider = f"{detail.provider} · id {detail.provider_message_id}"
    return {
        "Created": times.clinic_time(detail.created_at, zone, seconds=True),
        "Recipient": detail.recipient, "Patient": detail.patient_name or dash,
        "Template": (f"{detail.template_name} ({detail.template_code}), version {detail.template_version}"
                     if detail.template_code else "none (free text)"),
        "Sent by": detail.sent_by, "Bulk send": detail.bulk_job_name or dash,
        "Provider": provider, "Sender": detail.sender or dash, "Segments": str(detail.segments),
        "Price": f"{detail.price} {detail.price_unit or ''}".strip() if detail.price is not None else dash,
        "Attempts": str(detail.attempts), "Test message": "yes" if detail.is_test else "no",
        "Sent": times.clinic_time(detail.sent_at, zone, seconds=True),
        "Delivered": times.clinic_time(detail.delivered_at, zone, seconds=True),
    }


def filter_from_url() -> tuple[MessageFilter, str | None]:
    """The filter in the page's URL, or the default filter and the reason the URL was not understood."""
    params = {key: st.query_params[key] for key in st.query_params if key not in PAGE_KEYS}
    try:
        return MessageFilter.from_params(params), None
    except AppError as err:
        return MessageFilter(), f"The link's filter was not understood ({err}); showing the default view."


def put_in_url(flt: MessageFilter, *, keep: dict[str, str] | None = None) -> None:
    """Put ``flt`` in the URL (the first page of it), so the view can be shared and reloaded."""
    st.query_params.from_dict({**flt.to_params(), **(keep or {})})


def show_filter(flt: MessageFilter, *, keep: dict[str, str] | None = None) -> None:
    """Put ``flt`` in the URL (the first page of it) and redraw."""
    put_in_url(flt, keep=keep)
    st.rerun()


def cursor_from_url() -> Cursor | None:
    value = st.query_params.get("after")
    if not value:
        return None
    try:
        return Cursor.decode(value)
    except AppError:
        return None


def table_key(*parts: object) -> str:
    """The results table's widget key: the page it shows, and a number ``close_message`` moves on."""
    return f"table-{st.session_state.get(TABLE_KEY, 0)}-" + "-".join(map(str, parts))


def clicked_message(event: Any, rows: list[MessageRow], key: str) -> uuid.UUID | None:
    """The message of the row just clicked in the table ``key`` (a row or any of its cells), once per
    click: a selection already acted on opens nothing, even when new rows moved it onto another message."""
    selection = getattr(event, "selection", None)
    picked = [*(selection.rows if selection else []), *(cell[0] for cell in (selection.cells if selection else []))]
    click = (key, picked[0] if picked else None)
    if click == st.session_state.get(CLICKED_KEY):
        return None
    st.session_state[CLICKED_KEY] = click
    return rows[click[1]].id if click[1] is not None and 0 <= click[1] < len(rows) else None


def close_message() -> None:
    """Take the open message out of the URL and clear the table's selection (the dialog is closed)."""
    st.query_params.pop("message", None)
    st.session_state[TABLE_KEY] = st.session_state.get(TABLE_KEY, 0) + 1
    st.session_state.pop(CLICKED_KEY, None)


def message_from_url() -> uuid.UUID | None:
    try:
        return uuid.UUID(st.query_params.get("message", ""))
    except ValueError:
        return None


_count = clinic_cached(ttl=30, key=lambda flt: tuple(sorted(flt.to_params().items())))(explorer.count_messages)


def count(actor: Actor, flt: MessageFilter) -> Total:
    """The filter's total, at most 30 seconds old (counting is the slow part of a rerun)."""
    return _count(actor, flt)


_options = clinic_cached(ttl=300)(explorer.filter_options)


def options(actor: Actor) -> FilterOptions:
    """Templates and recent bulk jobs of the clinic, at most five minutes old."""
    return _options(actor)


def forget_counts() -> None:
    """After a retry or cancel the totals by status change."""
    _count.clear()


def table_rows(rows: list[MessageRow], zone: ZoneInfo) -> list[dict[str, Any]]:
    return [{
        times.heading("Time", zone): times.local(row.created_at, zone),
        "Status": STATUS_BADGES[row.status],
        "Channel": row.channel.label,
        "Recipient": row.recipient,
        "Patient": row.patient_name,
        "Template": row.template_name,
        "Error": row.error_code or "",
        "Retry of earlier": row.is_retry,
        "Test": row.is_test,
    } for row in rows]


def row_label(row: MessageRow, zone: ZoneInfo) -> str:
    name = f" · {as_text(row.patient_name)}" if row.patient_name else ""
    return f"{row.created_at.astimezone(zone):%d %b %H:%M} · {as_text(row.recipient)}{name} · {row.status.value}"
