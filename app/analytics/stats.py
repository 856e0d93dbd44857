"""What the numbers mean: the one place that says which messages count as delivered or failed.

- **Delivered**: ``delivered`` or ``read``; for e-mail also ``sent`` (the mail server accepted it and
  SMTP reports nothing later).
- **Failed**: ``failed`` or ``undelivered``.
- **Not sent**: ``cancelled`` or ``suppressed`` (never handed to a provider; not an outcome).
- **In progress**: everything else (scheduled, queued, sending, sent SMS/WhatsApp awaiting their
  report, unknown).
- **Success rate**: delivered / (delivered + failed), the messages with a final outcome; none when
  no message has one yet.
- **Time to delivered**: from the hand-over to the provider to the delivery report; its median
  is read from the rollups' histogram (interpolated inside the bucket).
- Test messages are never counted (the rollups leave them out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from db.enums import Channel, MessageStatus
from db.models import LATENCY_BUCKET_BOUNDS
from db.types import StrEnum

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    NOT_SENT = "not_sent"

    @property
    def label(self) -> str:
        return {"delivered": "Delivered", "failed": "Failed", "in_progress": "In progress",
                "not_sent": "Not sent"}[self.value]


_DELIVERED = frozenset({MessageStatus.DELIVERED, MessageStatus.READ})
_FAILED = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})
_NOT_SENT = frozenset({MessageStatus.CANCELLED, MessageStatus.SUPPRESSED})


def outcome(channel: Channel | str, status: MessageStatus | str) -> Outcome:
    """Which outcome a message on ``channel`` in ``status`` counts as."""
    status = MessageStatus(status)
    if status in _DELIVERED or (status == MessageStatus.SENT and Channel(channel) == Channel.EMAIL):
        return Outcome.DELIVERED
    if status in _FAILED:
        return Outcome.FAILED
    if status in _NOT_SENT:
        return Outcome.NOT_SENT
    return Outcome.IN_PROGRESS


def rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def median_from_histogram(counts: list[int] | tuple[int, ...]) -> float | None:
    """The median (seconds) of a time-to-delivered histogram over ``LATENCY_BUCKET_BOUNDS``."""
    total = sum(counts)
    if not total:
        return None
    half = total / 2
    lowers = (0, *LATENCY_BUCKET_BOUNDS)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= half:
            lower = lowers[index]
            if index == len(LATENCY_BUCKET_BOUNDS):  # the open bucket: at least its lower bound
                return float(lower)
            upper = LATENCY_BUCKET_BOUNDS[index]
            return lower + (upper - lower) * (half - seen) / count
        seen += count
    return None  # pragma: no cover - the loop always reaches half


@dataclass
class Totals:
    """Sums of rollup measures with the statistics defined above."""

    messages: int = 0
    delivered: int = 0
    failed: int = 0
    in_progress: int = 0
    not_sent: int = 0
    cost: Decimal = Decimal(0)
    segments: int = 0
    read: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKET_BOUNDS) + 1))

    def add(self, channel: Channel | str, status: MessageStatus | str, measures: dict[str, Any]) -> None:
        count = int(measures["messages"])
        self.messages += count
        kind = outcome(channel, status)
        setattr(self, kind.value, getattr(self, kind.value) + count)
        self.cost += Decimal(measures["cost"] or 0)
        self.segments += int(measures["segments"] or 0)
        self.read += int(measures["read"] or 0)
        for index in range(len(self.latency)):
            self.latency[index] += int(measures[f"latency_b{index}"] or 0)

    @property
    def final(self) -> int:
        return self.delivered + self.failed

    @property
    def success_rate(self) -> float | None:
        return rate(self.delivered, self.final)

    @property
    def read_rate(self) -> float | None:
        """Read over delivered (meaningful for WhatsApp, whose read receipts we get)."""
        return rate(self.read, self.delivered)

    @property
    def median_seconds_to_delivered(self) -> float | None:
        return median_from_histogram(self.latency)

    @property
    def cost_per_delivered(self) -> Decimal | None:
        return self.cost / self.delivered if self.delivered else None
