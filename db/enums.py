"""The one place for roles, channels, statuses and the allowed status transitions."""

from __future__ import annotations

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


FINAL_STATUSES = frozenset(
    {
        MessageStatus.READ,
        MessageStatus.FAILED,
        MessageStatus.UNDELIVERED,
        MessageStatus.CANCELLED,
        MessageStatus.SUPPRESSED,
    }
)

# Forward-only lifecycle. A late or repeated event that is not listed here changes nothing.
# "delivered" may still become "read" (WhatsApp); "unknown" is settled by lookup or callback.
ALLOWED_TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.SCHEDULED: frozenset(
        {MessageStatus.QUEUED, MessageStatus.CANCELLED, MessageStatus.SUPPRESSED}
    ),
    MessageStatus.QUEUED: frozenset(
        {
            MessageStatus.SENDING,
            MessageStatus.SCHEDULED,  # deferred (quiet hours, retry backoff, clinic paused)
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
            MessageStatus.QUEUED,  # provider said "not processed": safe to try again
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
        }
    ),
    MessageStatus.READ: frozenset(),
    MessageStatus.FAILED: frozenset(),
    MessageStatus.UNDELIVERED: frozenset(),
    MessageStatus.CANCELLED: frozenset(),
    MessageStatus.SUPPRESSED: frozenset(),
}


def can_transition(current: MessageStatus, new: MessageStatus) -> bool:
    """True when moving from ``current`` to ``new`` is a forward step of the lifecycle."""
    return new in ALLOWED_TRANSITIONS[current]


class BulkJobStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    EXPANDING = "expanding"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class OptOutSource(StrEnum):
    STAFF = "staff"
    PATIENT_REPLY = "patient_reply"
    PROVIDER = "provider"
    IMPORT = "import"
    SYSTEM = "system"
