"""Scripted answers: what the fake does with each message-create request.

A request takes one ``Outcome``: first from the FIFO queue (``script(...)``), else from the
responder function, else from a per-``To`` rule, else the default (success).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

OutcomeKind = Literal["success", "error", "hang", "drop", "accept_then_hang", "accept_then_error", "accept_then_drop"]
CREATES_MESSAGE: frozenset[str] = frozenset({"success", "accept_then_hang", "accept_then_error", "accept_then_drop"})


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one message-create request. Build with the classmethods."""

    kind: OutcomeKind = "success"
    http_status: int | None = None  # error status; None = from KNOWN_ERRORS (errors) or 201 (success)
    code: int | None = None  # Twilio error code for "error" / "accept_then_error"
    message: str | None = None  # error message; None = KNOWN_ERRORS text
    latency_ms: float | None = None  # overrides the server-wide latency for this request
    hang_s: float | None = None  # how long hang/accept_then_hang sleep; None = the server's hang_s
    message_status: str | None = None  # initial status of a created message (default queued/accepted)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. Retry-After)

    @classmethod
    def success(cls, *, status: str | None = None, latency_ms: float | None = None) -> Outcome:
        """201 with the created message (optionally with a given initial status)."""
        return cls("success", message_status=status, latency_ms=latency_ms)

    @classmethod
    def slow(cls, latency_ms: float) -> Outcome:
        """Success after `latency_ms` instead of the server-wide latency."""
        return cls("success", latency_ms=latency_ms)

    @classmethod
    def error(
        cls,
        code: int,
        message: str | None = None,
        http_status: int | None = None,
        *,
        latency_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Nothing created; Twilio error `code` with its HTTP status (400/429/500 ...) and JSON body."""
        return cls(
            "error",
            http_status=http_status,
            code=code,
            message=message,
            latency_ms=latency_ms,
            headers=dict(headers or {}),
        )

    @classmethod
    def hang(cls, hang_s: float | None = None) -> Outcome:
        """Nothing created; no answer for `hang_s` (the client times out), then 201 if still connected."""
        return cls("hang", hang_s=hang_s)

    @classmethod
    def drop(cls) -> Outcome:
        """Nothing created; the TCP connection is aborted without a response."""
        return cls("drop")

    @classmethod
    def accept_then_hang(cls, hang_s: float | None = None) -> Outcome:
        """The message IS created, then no answer for `hang_s` seconds (the ambiguous timeout)."""
        return cls("accept_then_hang", hang_s=hang_s)

    @classmethod
    def accept_then_error(
        cls, code: int = 20500, http_status: int | None = None, message: str | None = None
    ) -> Outcome:
        """The message IS created, then an error (default 500/20500) is returned."""
        return cls("accept_then_error", http_status=http_status, code=code, message=message)

    @classmethod
    def accept_then_drop(cls) -> Outcome:
        """The message IS created, then the connection is aborted without a response."""
        return cls("accept_then_drop")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the standalone control API)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of to_dict; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Outcome fields: {sorted(unknown)}")
        return cls(**dict(data))


Responder = Callable[[dict[str, str]], Outcome | None]


class Script:
    """The rules that pick an Outcome for each message-create request; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Outcome] = deque()
        self._by_to: dict[str, Outcome] = {}
        self._default: Outcome = Outcome.success()
        self._responder: Responder | None = None

    def __len__(self) -> int:
        """How many queued outcomes are left."""
        return len(self._queue)

    def clear(self) -> None:
        """Back to answering every request with success."""
        with self._lock:
            self._queue.clear()
            self._by_to.clear()
            self._default = Outcome.success()
            self._responder = None

    def queue(self, *outcomes: Outcome, replace: bool = False) -> None:
        """Queue outcomes for the next requests, in arrival order; `replace` drops what was queued."""
        with self._lock:
            if replace:
                self._queue.clear()
            self._queue.extend(outcomes)

    def set_responder(self, fn: Responder | None) -> None:
        """Decide with `fn(form params)` once the queue is empty; None from `fn` falls through."""
        self._responder = fn

    def set_for_to(self, to: str, outcome: Outcome | None) -> None:
        """Every request to `to` gets `outcome`; None removes the rule."""
        with self._lock:
            if outcome is None:
                self._by_to.pop(to, None)
            else:
                self._by_to[to] = outcome

    def set_default(self, outcome: Outcome) -> None:
        """The outcome when nothing else matched."""
        self._default = outcome

    def next_outcome(self, params: dict[str, str]) -> Outcome:
        """The outcome for a request with these form params (consumes one queued outcome)."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder = self._responder
        if responder is not None:
            outcome = responder(params)
            if outcome is not None:
                return outcome
        with self._lock:
            return self._by_to.get(params.get("To", ""), self._default)

    def apply(self, data: Mapping[str, Any]) -> None:
        """Apply the control API's JSON: queue (append or not), by_to, default."""
        self.queue(*(Outcome.from_dict(o) for o in data.get("queue", [])), replace=not data.get("append", True))
        for to, outcome in (data.get("by_to") or {}).items():
            self.set_for_to(to, None if outcome is None else Outcome.from_dict(outcome))
        if "default" in data:
            self.set_default(Outcome.from_dict(data["default"] or {}))
