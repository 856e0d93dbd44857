"""Recorded API requests and the counts a test or benchmark reads from them."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    """One API request as the fake received it (never the Authorization header)."""

    method: str
    path: str
    endpoint: str  # messages.create | messages.fetch | messages.list | messages.update | ... | unknown
    params: dict[str, str]  # form body, first value per name
    query: dict[str, str]
    received_monotonic: float  # time.monotonic() (system-wide on Linux: comparable across processes)
    received_wall: float  # time.time()
    account_sid: str | None = None
    auth_ok: bool = False
    outcome: str | None = None  # Outcome.kind, or auth_failed / invalid / not_found
    http_status: int | None = None  # None if no response was sent (drop, hang cut short)
    error_code: int | None = None
    sid: str | None = None  # the message created or addressed
    responded_monotonic: float | None = None
    multi: dict[str, list[str]] = field(default_factory=dict)  # params that occurred more than once

    @property
    def to(self) -> str | None:
        """The To parameter (or None)."""
        return self.params.get("To")

    @property
    def created(self) -> bool:
        """True when this request created a message (whatever the client saw)."""
        return self.endpoint == "messages.create" and self.sid is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """Inverse of to_dict."""
        return cls(**dict(data))


def count_by_to(requests: Iterable[RecordedRequest], *, created_only: bool = False) -> dict[str, int]:
    """Message-create requests per To number (only those that created a message if `created_only`)."""
    counter: Counter[str] = Counter()
    for rec in requests:
        if rec.endpoint == "messages.create" and rec.to is not None and (rec.created or not created_only):
            counter[rec.to] += 1
    return dict(counter)


def max_rate(requests: Iterable[RecordedRequest], window_s: float = 1.0, *, sends_only: bool = True) -> int:
    """Largest number of requests received within any window of `window_s` seconds (half-open)."""
    times = sorted(r.received_monotonic for r in requests if not sends_only or r.endpoint == "messages.create")
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + window_s, lo=i)
        best = max(best, j - i)
    return best
