"""Statistics over the outcomes: totals, rates and the median time to delivered.

Which messages count as delivered, failed, in progress or not sent is ``db.enums.outcome``
(re-exported here with ``Outcome``); every screen uses that one rule.

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

from db.enums import Channel, MessageStatus, Outcome, outcome
from db.models import LATENCY_BUCKET_BOUNDS

__all__ = ["WEEKDAYS", "Outcome", "Totals", "median_from_histogram", "outcome", "rate"]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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
