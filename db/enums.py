"""The one place for roles, channels, statuses, the allowed status transitions and what each status means.

Every rule about message statuses lives here: the lifecycle table (``ALLOWED_TRANSITIONS``) and
what is derived from it (final statuses, what may be cancelled, the sources of a bulk move), and
the four outcomes every screen counts (``Outcome``, ``outcome``) with their SQL twins
(``outcome_clause``, ``outcome_case``, ``count_of``). ``tests/test_one_rule_statuses.py`` fails
when a group of statuses is written anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlalchemy.sql.expression import ColumnElement

from db.types import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    FRONT_DESK = "front_desk"
    ANALYST = "analyst"

    @property
    def label(self) -> str:
        return {"admin": "Admin", "front_desk": "Front desk", "analyst": "Analyst"}[self.value]


class Channel(StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"

    @property
    def label(self) -> str:
        return {"sms": "SMS", "whatsapp": "WhatsApp", "email": "Email"}[self.value]

    @classmethod
    def parse(cls, value: str | Channel) -> Channel:
        """Accept 'SMS', 'sms', 'WhatsApp', 'email' and so on."""
        if isinstance(value, Channel):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown channel '{value}'; use one of {allowed}") from None


class Language(StrEnum):
    EN = "en"
    AR = "ar"

    @property
    def label(self) -> str:
        return {"en": "English", "ar": "Arabic"}[self.value]


class MessageClass(StrEnum):
    SERVICE = "service"
    PROMOTIONAL = "promotional"


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


# Forward-only lifecycle. A late or repeated event that is not listed here changes nothing.
# "delivered" may still become "read" (WhatsApp); "unknown" is settled by lookup or callback.
ALLOWED_TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.SCHEDULED: frozenset(
        {MessageStatus.QUEUED, MessageStatus.CANCELLED, MessageStatus.SUPPRESSED}
    ),
    MessageStatus.QUEUED: frozenset(
        {
            MessageStatus.SENDING,  # a worker's claim
            MessageStatus.SCHEDULED,  # deferred (quiet hours, retry backoff, clinic or bulk job paused)
            MessageStatus.CANCELLED,
            MessageStatus.SUPPRESSED,
            MessageStatus.FAILED,
        }
    ),
    MessageStatus.SENDING: frozenset(
        {
            MessageStatus.SENT,
            MessageStatus.DELIVERED,
            MessageStatus.READ,
            MessageStatus.FAILED,
            MessageStatus.UNDELIVERED,
            MessageStatus.UNKNOWN,
            MessageStatus.QUEUED,  # provider said "not processed", or its lookup has no record: safe to try again
            MessageStatus.SCHEDULED,  # retry later with backoff
            MessageStatus.SUPPRESSED,
        }
    ),
    MessageStatus.SENT: frozenset(
        {MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED, MessageStatus.UNDELIVERED}
    ),
    MessageStatus.DELIVERED: frozenset({MessageStatus.READ}),
    MessageStatus.UNKNOWN: frozenset(
        {
            MessageStatus.SENT,
            MessageStatus.DELIVERED,
            MessageStatus.READ,
            MessageStatus.FAILED,
            MessageStatus.UNDELIVERED,
            # Only when the provider's own lookup proves it never received the message (the sweeper,
            # after the grace period): it was never sent, so sending it is not a second send.
            MessageStatus.QUEUED,
        }
    ),
    MessageStatus.READ: frozenset(),
    MessageStatus.FAILED: frozenset(),
    MessageStatus.UNDELIVERED: frozenset(),
    MessageStatus.CANCELLED: frozenset(),
    MessageStatus.SUPPRESSED: frozenset(),
}

FINAL_STATUSES = frozenset(status for status, moves in ALLOWED_TRANSITIONS.items() if not moves)
"""Statuses a message never leaves (read, failed, undelivered, cancelled, suppressed)."""


class TransitionNotAllowed(ValueError):
    """Code asked for a status change the lifecycle table does not list (a bug, not bad input)."""


def can_transition(current: MessageStatus, new: MessageStatus) -> bool:
    """True when moving from ``current`` to ``new`` is a forward step of the lifecycle."""
    return new in ALLOWED_TRANSITIONS[current]


def require_transition(current: MessageStatus, new: MessageStatus) -> None:
    """Raise ``TransitionNotAllowed`` unless the table lists ``current -> new``."""
    if not can_transition(current, new):
        raise TransitionNotAllowed(f"a message may not move from {current.value} to {new.value}")


def sources_of(new: MessageStatus, among: Iterable[MessageStatus] | None = None) -> tuple[MessageStatus, ...]:
    """The statuses (of ``among``, default all) a message may move to ``new`` from, in lifecycle order.

    The ``WHERE status IN (...)`` of every statement that moves many messages at once is this;
    naming a status the table does not allow raises ``TransitionNotAllowed``.
    """
    if among is not None:
        for status in among:
            require_transition(MessageStatus(status), new)
    wanted = set(MessageStatus) if among is None else {MessageStatus(s) for s in among}
    return tuple(s for s in MessageStatus if s in wanted and can_transition(s, new))


def may_move_to(column: ColumnElement[Any], new: MessageStatus,
                among: Iterable[MessageStatus] | None = None) -> ColumnElement[bool]:
    """SQL: ``column IN (sources_of(new, among))``, the condition of a conditional bulk move."""
    return column.in_([s.value for s in sources_of(new, among)])


# What staff may do to a message, read from the table: cancel what may still become "cancelled";
# retry (a new message linked to the old one) what failed, or what is "unknown" when staff decide
# to resend rather than wait for the provider.
CANCELLABLE: tuple[MessageStatus, ...] = sources_of(MessageStatus.CANCELLED)


# --- what a status means on every screen --------------------------------------------------------


class Outcome(StrEnum):
    """Which of four outcomes a message counts as, on every screen (one rule: ``outcome``).

    - **Delivered**: ``delivered`` or ``read``; for a channel without delivery receipts (e-mail:
      SMTP reports nothing after the server accepted the mail) also ``sent``.
    - **Failed**: ``failed`` or ``undelivered``.
    - **Not sent**: ``cancelled`` or ``suppressed``: never handed to a provider; not an outcome
      of delivery, so not in success rates.
    - **In progress**: everything else: waiting (``scheduled``, ``queued``, ``sending``) or with
      the provider awaiting its report (``sent`` SMS/WhatsApp, and ``unknown``: the provider may
      still deliver it; a lookup or a late callback settles it).

    The success rate is delivered / (delivered + failed).
    """

    DELIVERED = "delivered"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    NOT_SENT = "not_sent"

    @property
    def label(self) -> str:
        return {"delivered": "Delivered", "failed": "Failed", "in_progress": "In progress",
                "not_sent": "Not sent"}[self.value]


DELIVERED_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.DELIVERED, MessageStatus.READ)
FAILED_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
NOT_SENT_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.CANCELLED, MessageStatus.SUPPRESSED)
WAITING_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING)
"""In progress, not yet handed to a provider."""
AT_PROVIDER_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.SENT, MessageStatus.UNKNOWN)
"""In progress at the provider (except e-mail ``sent``, which counts as delivered)."""
ACCEPTED_IS_DELIVERED: frozenset[Channel] = frozenset({Channel.EMAIL})
"""Channels with no delivery receipt: ``sent`` (accepted by the provider) is as far as they go."""
ACCEPTED_STATUSES: tuple[MessageStatus, ...] = (MessageStatus.SENT, *DELIVERED_STATUSES)
"""The provider has taken the message (and may have reported it delivered or read)."""
RETRYABLE: tuple[MessageStatus, ...] = (*FAILED_STATUSES, MessageStatus.UNKNOWN)
"""What staff may retry: failed, or unknown (the provider may have it: staff decide to resend)."""


def outcome(channel: Channel | str, status: MessageStatus | str) -> Outcome:
    """Which outcome a message on ``channel`` in ``status`` counts as (see ``Outcome``)."""
    status = MessageStatus(status)
    if status in DELIVERED_STATUSES or (status == MessageStatus.SENT and Channel(channel) in ACCEPTED_IS_DELIVERED):
        return Outcome.DELIVERED
    if status in FAILED_STATUSES:
        return Outcome.FAILED
    if status in NOT_SENT_STATUSES:
        return Outcome.NOT_SENT
    return Outcome.IN_PROGRESS


# --- the same rule in SQL (derived from ``outcome``, so the two cannot disagree) ---------------


def outcome_conditions(channel: ColumnElement[Any], status: ColumnElement[Any],
                       wanted: Outcome) -> list[ColumnElement[bool]]:
    """SQL conditions, one per alternative, that together select the messages counting as ``wanted``.

    A status that counts as ``wanted`` on every channel is one ``status IN (...)``; one that does
    on some channels only is ``status = s AND channel IN (...)``. Separate conditions let a caller
    read each with its own index scan; ``outcome_clause`` joins them with OR.
    """
    whole: list[str] = []
    partial: list[ColumnElement[bool]] = []
    for s in MessageStatus:
        channels = [c.value for c in Channel if outcome(c, s) == wanted]
        if len(channels) == len(Channel):
            whole.append(s.value)
        elif channels:
            partial.append(and_(status == s.value, channel.in_(channels)))
    return [*([status.in_(whole)] if whole else []), *partial]


def outcome_clause(channel: ColumnElement[Any], status: ColumnElement[Any], wanted: Outcome) -> ColumnElement[bool]:
    """SQL: the message counts as ``wanted`` (``outcome(channel, status) == wanted``)."""
    conditions = outcome_conditions(channel, status, wanted)
    return or_(*conditions) if len(conditions) > 1 else conditions[0]


def outcome_case(channel: ColumnElement[Any], status: ColumnElement[Any]) -> ColumnElement[str]:
    """SQL: the outcome's value (``'delivered'``, ``'failed'``, ...) of each message."""
    return case(*[(outcome_clause(channel, status, o), o.value) for o in Outcome if o != Outcome.IN_PROGRESS],
                else_=Outcome.IN_PROGRESS.value)


def count_of(channel: ColumnElement[Any], status: ColumnElement[Any], wanted: Outcome) -> ColumnElement[int]:
    """SQL aggregate: how many rows count as ``wanted`` (0, not NULL, when none)."""
    return func.coalesce(func.sum(case((outcome_clause(channel, status, wanted), 1), else_=0)), 0)


class BulkJobStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    EXPANDING = "expanding"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"draft": "Draft", "scheduled": "Scheduled", "expanding": "Preparing", "sending": "Sending",
                "paused": "Paused", "completed": "Completed", "cancelled": "Cancelled",
                "failed": "Failed"}[self.value]


# A bulk job's lifecycle, as a table like the messages' own. A job ends (completed, cancelled or
# failed) and an ended job never moves again. "completed" means every recipient's last attempt is
# final; whether some failed is read from its counts.
BULK_JOB_TRANSITIONS: dict[BulkJobStatus, frozenset[BulkJobStatus]] = {
    BulkJobStatus.DRAFT: frozenset({BulkJobStatus.EXPANDING}),
    BulkJobStatus.EXPANDING: frozenset({BulkJobStatus.SCHEDULED, BulkJobStatus.SENDING, BulkJobStatus.COMPLETED,
                                        BulkJobStatus.FAILED, BulkJobStatus.CANCELLED}),
    BulkJobStatus.SCHEDULED: frozenset({BulkJobStatus.SENDING, BulkJobStatus.PAUSED, BulkJobStatus.COMPLETED,
                                        BulkJobStatus.CANCELLED}),
    BulkJobStatus.SENDING: frozenset({BulkJobStatus.PAUSED, BulkJobStatus.COMPLETED, BulkJobStatus.CANCELLED}),
    BulkJobStatus.PAUSED: frozenset({BulkJobStatus.SENDING, BulkJobStatus.SCHEDULED, BulkJobStatus.CANCELLED}),
    BulkJobStatus.COMPLETED: frozenset(),
    BulkJobStatus.CANCELLED: frozenset(),
    BulkJobStatus.FAILED: frozenset(),
}
BULK_JOB_ENDED = frozenset(status for status, moves in BULK_JOB_TRANSITIONS.items() if not moves)
BULK_JOB_MOVING = frozenset(BULK_JOB_TRANSITIONS) - BULK_JOB_ENDED - {BulkJobStatus.DRAFT}
# The job-level switch: no message of a job in one of these states is claimed for sending.
BULK_JOB_HOLDS = frozenset({BulkJobStatus.PAUSED, BulkJobStatus.CANCELLED})


def move_bulk_job(job: Any, new: BulkJobStatus) -> None:
    """Set ``job.status`` to ``new`` if the bulk-job table allows it (``TransitionNotAllowed`` if not)."""
    current = BulkJobStatus(job.status)
    if new not in BULK_JOB_TRANSITIONS[current]:
        raise TransitionNotAllowed(f"a bulk job may not move from {current.value} to {new.value}")
    job.status = new


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"  # booked, and the patient said they will come (FHIR: participant "accepted")
    CANCELLED = "cancelled"
    COMPLETED = "completed"  # FHIR "fulfilled"
    NO_SHOW = "no_show"  # FHIR "noshow"

    @property
    def label(self) -> str:
        return {"booked": "Booked", "confirmed": "Confirmed", "cancelled": "Cancelled",
                "completed": "Completed", "no_show": "No-show"}[self.value]


# An appointment still to come: reminders are planned and sent only for these.
OPEN_APPOINTMENT_STATUSES = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})
# An appointment whose attendance the clinic's system has recorded: no-show rates are counted over these.
ATTENDANCE_RECORDED = frozenset({AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW})


class ReminderStatus(StrEnum):
    """One planned reminder (one rule x one appointment): pending until its time, then sent (its
    message was written) or cancelled/skipped (the appointment was cancelled, moved into the past,
    or the rule no longer covers it). A sent reminder is never sent again."""

    PENDING = "pending"
    SENT = "sent"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        return {"pending": "Pending", "sent": "Sent", "cancelled": "Cancelled", "skipped": "Skipped"}[self.value]


class ReminderShift(StrEnum):
    """Where a reminder goes when its time falls outside the clinic's sending hours, on a weekend or a holiday."""

    EARLIER = "earlier"  # the last sending time before it (the usual choice: a reminder must not come late)
    LATER = "later"  # the first sending time after it (never later than the appointment itself)

    @property
    def label(self) -> str:
        return {"earlier": "Earlier (the working time before)", "later": "Later (the working time after)"}[self.value]


class ReplyIntent(StrEnum):
    """What a patient's reply asks for. Only a clear confirm or cancel acts on its own; the rest goes
    to the front desk's inbox (``stop``/``start`` change the patient's opt-in as before)."""

    CONFIRM = "confirm"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    STOP = "stop"
    START = "start"
    UNCLEAR = "unclear"

    @property
    def label(self) -> str:
        return {"confirm": "Confirm", "cancel": "Cancel", "reschedule": "Reschedule request", "stop": "Opt-out",
                "start": "Opt-in", "unclear": "Needs a person"}[self.value]


class ConversationState(StrEnum):
    """A patient's thread in the inbox: open until the front desk marks it done; a new reply reopens it."""

    OPEN = "open"
    DONE = "done"


class OptOutSource(StrEnum):
    STAFF = "staff"
    PATIENT_REPLY = "patient_reply"
    PROVIDER = "provider"
    IMPORT = "import"
    SYSTEM = "system"
