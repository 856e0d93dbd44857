"""Tell a bulk job's creator, once, that it ended: a notice on their next page view (any page)."""

from __future__ import annotations

import streamlit as st

from app.services.bulk import jobs as bulk_jobs
from app.ui import feedback
from app.ui.text import plain
from db.enums import BulkJobStatus

ICONS = {BulkJobStatus.COMPLETED: ":material/task_alt:", BulkJobStatus.CANCELLED: ":material/cancel:",
         BulkJobStatus.FAILED: ":material/error:"}


def show() -> None:
    """One notice per job that ended since the user was last told (the service marks them told)."""
    for ending in feedback.service(bulk_jobs.take_endings) or []:
        failed = " with failures" if ending.status == BulkJobStatus.COMPLETED and ending.counts.get("failed") else ""
        st.toast(f"Bulk job **{plain(ending.name) or 'without a name'}** {ending.status.label.lower()}{failed}: "
                 f"{plain(ending.summary)}. Open **Bulk send → Bulk jobs** for details.",
                 icon=ICONS.get(ending.status), duration="infinite")
