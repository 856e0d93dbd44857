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

**When a thread was first answered** (the front desk's reply time, for analytics): a reply sent
from the inbox clears the thread's ``waiting_since`` and records an ``inbox.reply`` audit event
whose ``details`` hold the ``waiting_since`` it cleared (ISO 8601, UTC) and the ``message_id``
sent. The first answer to a wait is an ``inbox.reply`` event whose ``details["waiting_since"]`` is
not null; its reply time is ``created_at - waiting_since`` (later replies in the same wait carry
null). Marking a thread done without answering also ends the wait (``inbox.done`` carries the
``waiting_since`` it ended, null when nothing was waiting) and is not an answer.
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
