"""The front desk's inbox: patients' replies that need a person, one thread per address that writes.

Replies arrive through ``app.services.replies`` (the webhook), which files each one on the clinic's
``Conversation`` for the sender's address: an unread count, the oldest reply nobody answered yet
(``waiting_since``), the last reply's intent. This package is what staff do with them (every use
case checks ``WORK_INBOX``: admins and front desk):

- ``reading``: the list of threads (filters by state, intent, waiting time, assignee, unread;
  keyset pages), the clinic's unread total, and one thread's timeline (its replies and the
  clinic's messages to that address or patient), which marks the thread read;
- ``working``: assign a thread to a staff member of the clinic, mark it done, reopen it;
- ``replying``: what an answer may be (the channel of the last reply; WhatsApp free text only
  inside 24 hours of the patient's last message, else an approved template), its preview and the
  send, through the one-message path (``single_send``; ``messaging.send`` for a number no patient has).

A read is not audited; every change is (``inbox.assign``, ``inbox.done``, ``inbox.reopen``,
``inbox.reply``).

**When a thread was first answered** (the front desk's reply time, for analytics): a wait starts at a
reply left for the front desk and is answered by the first message a staff member wrote
(``Message.created_by_id`` set, not part of a bulk send, not a test) to the thread's address or its
patient at or after that reply. Every answer sent from the inbox is such a message, to the address,
and it also clears the thread's ``waiting_since`` and records an ``inbox.reply`` audit event whose
``details`` hold the ``waiting_since`` it ended (ISO 8601, UTC; null for a later answer in the same
wait) and the ``message_id``. Marking a thread done ends a wait without an answer (``inbox.done``,
with the ``waiting_since`` it ended); it is not an answer. ``app.analytics.reminders`` reads it so.
"""

from app.services.inbox.reading import (
    TIMELINE_LIMIT,
    UNKNOWN_NUMBER,
    Assigned,
    Direction,
    StateFilter,
    ThreadCursor,
    ThreadPage,
    ThreadRow,
    ThreadView,
    TimelineItem,
    Waiting,
    thread,
    threads,
    unread_total,
)
from app.services.inbox.replying import (
    ReplyOptions,
    ReplyResult,
    ReplyTemplate,
    new_key,
    reply,
    reply_options,
    reply_preview,
)
from app.services.inbox.working import StaffChoice, assign, assignable_staff, mark_done, reopen

__all__ = [
    "TIMELINE_LIMIT", "UNKNOWN_NUMBER", "Assigned", "Direction", "ReplyOptions", "ReplyResult", "ReplyTemplate",
    "StaffChoice", "StateFilter", "ThreadCursor", "ThreadPage", "ThreadRow", "ThreadView", "TimelineItem", "Waiting",
    "assign", "assignable_staff", "mark_done", "new_key", "reopen", "reply", "reply_options", "reply_preview",
    "thread", "threads", "unread_total",
]
