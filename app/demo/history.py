"""Ninety days of message history: what each message is, generated cheaply.

Rows are generated in plain Python from pieces prepared once per clinic, template and patient
(``Entry``), with timestamps as whole seconds since ``Clock.base`` and outcomes (status, error
code, reason) drawn from weighted lookup lists. ``app.demo.writers`` turns them into COPY text
(PostgreSQL) or stored values (SQLite).

Most messages are drawn at random. A few are *fixed* (``Fixed``): the reminders of the demo's real
appointments and the acknowledgements of patients' replies (``app.demo.replies``) need exactly
this patient, this time and this appointment's date in the text. They take the first places of
their template's share of the history, and their ids are kept (``TemplatePlan.fixed_ids``).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app import pricing
from app.bidi import keep_ltr_order
from db.pgcopy import pg_escape

SEND_RATE = {"sms": 10, "whatsapp": 80, "email": 10}  # messages per second, as the bulk sender paces
CHUNK_ROWS = 20_000  # rows generated (and written) at a time


# --- time -----------------------------------------------------------------------------------


class Clock:
    """Whole seconds since ``base`` (the start of the history, on the hour) and their text forms."""

    def __init__(self, now: dt.datetime, days: int, future_days: int = 45) -> None:
        self.now = now
        self.base = (now - dt.timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        self.now_s = int((now - self.base).total_seconds())
        hours = self.now_s // 3600 + 24 * future_days
        # A timestamp's text is prefix[t // 3600] + mmss[t % 3600]: two look-ups, no datetime.
        self.prefix = [(self.base + dt.timedelta(hours=h)).strftime("%Y-%m-%d %H:") for h in range(hours)]
        self.mmss_pg = [f"{m:02d}:{s:02d}+00" for m in range(60) for s in range(60)]
        self.mmss_sqlite = [f"{m:02d}:{s:02d}.000000" for m in range(60) for s in range(60)]

    def sqlite(self, t: int | None) -> str | None:
        """SQLite's stored text of a timestamp (naive UTC with microseconds, as SQLAlchemy writes it)."""
        if t is None:
            return None
        return self.prefix[t // 3600] + self.mmss_sqlite[t % 3600]

    def at(self, t: int | None) -> dt.datetime | None:
        return None if t is None else self.base + dt.timedelta(seconds=t)

    def seconds(self, moment: dt.datetime) -> int:
        return int((moment - self.base).total_seconds())


class LocalCalendar:
    """A clinic's local dates and the weights of sending hours (weekday daytime heavy)."""

    # Riyadh hour of day -> relative sending volume.
    HOUR_WEIGHTS = (1, 1, 0, 0, 0, 1, 2, 8, 40, 70, 80, 80, 75, 55, 50, 65, 70, 70, 60, 45, 35, 20, 8, 3)
    # Monday..Sunday; the Saudi weekend is Friday and Saturday.
    DAY_WEIGHTS = (10, 10, 10, 10, 2, 5, 10)

    def __init__(self, clock: Clock, timezone: str) -> None:
        tz = zoneinfo.ZoneInfo(timezone)
        offset = clock.now.astimezone(tz).utcoffset() or dt.timedelta(0)
        self.offset_s = int(offset.total_seconds())
        local_base = clock.base + offset
        self.base_sod = local_base.hour * 3600 + local_base.minute * 60
        first = local_base.date()
        self.dates = [(first + dt.timedelta(days=d)).isoformat() for d in range(clock.now_s // 86400 + 60)]
        self.hours: list[int] = []
        self.cum_weights: list[int] = []
        total = 0
        for h in range(clock.now_s // 3600 - 1):  # complete hours that ended at least an hour ago
            local = local_base + dt.timedelta(hours=h)
            weight = self.HOUR_WEIGHTS[local.hour] * self.DAY_WEIGHTS[local.weekday()]
            if weight:
                total += weight
                self.hours.append(h)
                self.cum_weights.append(total)

    def local_seconds(self, date: dt.date, hour: int, minute: int = 0) -> int:
        """Seconds since base of a local wall-clock time on ``date``."""
        first = dt.date.fromisoformat(self.dates[0])
        return (date - first).days * 86400 + hour * 3600 + minute * 60 - self.base_sod


APPOINTMENT_TIMES = tuple(f"{h:02d}:{m:02d}" for h in range(8, 20) for m in (0, 15, 30, 45))

# --- outcomes ---------------------------------------------------------------------------------

DELIVERED, READ, SENT, UNDELIVERED = "delivered", "read", "sent", "undelivered"
FAILED_API, FAILED_LATE, UNKNOWN, SUPPRESSED = "failed_api", "failed_late", "unknown", "suppressed"
CANCELLED, SCHEDULED, QUEUED, SENDING = "cancelled", "scheduled", "queued", "sending"
RECENT_KINDS = frozenset({SCHEDULED, QUEUED, SENDING, UNKNOWN})  # only in the last hours
RECENT_LIMITS = {SCHEDULED: 60, QUEUED: 15, SENDING: 8, UNKNOWN: 20}  # at most this many per clinic
PRICED_KINDS = frozenset({DELIVERED, READ, SENT, UNDELIVERED, FAILED_LATE})  # the provider accepted it
CLAIMED_KINDS = frozenset({DELIVERED, READ, SENT, UNDELIVERED, FAILED_API, FAILED_LATE, UNKNOWN, SENDING})


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    status: str
    error_code: str | None = None
    reason: str = ""
    has_provider: bool = field(init=False)  # a provider took part (it has the provider's name)
    attempts: int = field(init=False)
    pg: str = field(init=False)  # "status\treason\terror_code\tattempts" for COPY

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_provider", self.kind in CLAIMED_KINDS and self.kind != SENDING)
        object.__setattr__(self, "attempts", 1 if self.kind in CLAIMED_KINDS else 0)
        code = "\\N" if self.error_code is None else pg_escape(self.error_code)
        object.__setattr__(self, "pg", f"{self.status}\t{pg_escape(self.reason)}\t{code}\t{self.attempts}")


def _o(kind: str, code: str | None = None, reason: str = "") -> Outcome:
    status = {FAILED_API: "failed", FAILED_LATE: "failed"}.get(kind, kind)
    return Outcome(kind, status, code, reason)


_COMMON_TAIL = (
    (_o(UNKNOWN, "timeout", "The provider did not answer in time; waiting for its status."), 2),
    (_o(CANCELLED, None, "Cancelled by staff before sending."), 4),
    (_o(SCHEDULED), 3),
    (_o(QUEUED), 2),
    (_o(SENDING), 1),
)
OUTCOMES: dict[str, tuple[tuple[Outcome, int], ...]] = {
    "sms": (
        (_o(DELIVERED), 892),
        (_o(SENT), 30),
        (_o(UNDELIVERED, "30003", "Unreachable destination handset (phone off or out of coverage)."), 15),
        (_o(UNDELIVERED, "30005", "Unknown destination handset: the number is no longer in service."), 8),
        (_o(UNDELIVERED, "30006", "Landline or unreachable carrier."), 5),
        (_o(UNDELIVERED, "30007", "The carrier filtered the message."), 4),
        (_o(UNDELIVERED, "30008", "Unknown error reported by the carrier."), 8),
        (_o(FAILED_API, "21211", "Invalid 'To' phone number."), 12),
        (_o(FAILED_API, "21614", "'To' number is not a valid mobile number."), 8),
        (_o(FAILED_API, "21610", "Attempt to send to an unsubscribed recipient."), 5),
        *_COMMON_TAIL,
    ),
    "whatsapp": (
        (_o(READ), 590),
        (_o(DELIVERED), 320),
        (_o(SENT), 25),
        (_o(FAILED_LATE, "63016", "Outside the 24-hour window: only an approved template may be sent."), 30),
        (_o(FAILED_LATE, "63003", "The number is not on WhatsApp."), 8),
        (_o(UNDELIVERED, "30008", "Unknown error reported by the carrier."), 10),
        (_o(FAILED_API, "21211", "Invalid 'To' phone number."), 5),
        *_COMMON_TAIL,
    ),
    "email": (
        (_o(SENT), 955),
        (_o(FAILED_API, "550", "550 Requested action not taken: mailbox unavailable."), 28),
        (_o(FAILED_API, "553", "553 Mailbox name not allowed."), 5),
        *_COMMON_TAIL,
    ),
}
SUPPRESSED_REASON = {
    "sms": "The patient opted out of SMS.",
    "whatsapp": "The patient turned WhatsApp messages off.",
    "email": "The patient opted out of e-mail.",
}

# Delays in seconds, picked uniformly from these lists (a cheap skewed distribution).
DELIVERY_DELAYS = {
    "sms": (2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 45, 60, 120),
    "whatsapp": (1, 1, 2, 2, 3, 4, 6),
    "email": (1,),
}
READ_DELAYS = (30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200)
UNDELIVERED_DELAYS = (5, 10, 20, 30, 60, 120, 300, 600)
FAILED_LATE_DELAYS = (2, 3, 5, 8)
CANCEL_DELAYS = (600, 1800, 3600, 7200, 14400)
LATEST_EVENT = 13 * 3600  # the longest a message's events spread after its creation


def outcome_table(channel: str, *, bulk: bool) -> list[Outcome]:
    """A lookup list where each outcome appears as often as its weight (index with random())."""
    return [o for o, w in OUTCOMES[channel] for _ in range(w)
            if not (bulk and (o.kind in RECENT_KINDS or o.kind == CANCELLED))]


# --- plans: what to generate ------------------------------------------------------------------


@dataclass
class PatientData:
    """One clinic's patients as parallel lists (index = patient number)."""

    ids: list[uuid.UUID] = field(default_factory=list)
    name_en: list[str] = field(default_factory=list)
    name_ar: list[str] = field(default_factory=list)
    phone: list[str] = field(default_factory=list)
    email: list[str | None] = field(default_factory=list)
    language: list[str] = field(default_factory=list)  # the language messages are written in
    doctor: list[int] = field(default_factory=list)  # index into the clinic's doctors
    tags: list[tuple[str, ...]] = field(default_factory=list)
    promotional: list[bool] = field(default_factory=list)
    # channel -> {patient: second at which the patient opted out of that channel}
    opted_out: dict[str, dict[int, int]] = field(default_factory=lambda: {"sms": {}, "whatsapp": {}, "email": {}})


@dataclass
class BulkPlan:
    id: uuid.UUID
    name: str
    template: int
    start_s: int
    audience: list[int]  # patients, in sending order
    tags: tuple[str, ...] = ()
    count: int = 0  # messages it owns


@dataclass(frozen=True, slots=True)
class Fixed:
    """One message the story around it needs exactly so (see the module docstring)."""

    patient: int
    created: int  # seconds since ``Clock.base``
    date: str  # the appointment's clinic date (ISO), for ``{{ appointment_date }}``
    time: str  # "HH:MM", for ``{{ appointment_time }}``
    answered_at: int | None = None  # the patient answered it at this second: it reached them (read, on WhatsApp)


@dataclass
class TemplatePlan:
    code: str
    channel: str
    message_class: str
    id: uuid.UUID
    version_id: uuid.UUID
    body_en: str
    body_ar: str
    subject_en: str
    subject_ar: str
    created_by: uuid.UUID | None  # who sends it when it is not part of a bulk send
    urgent: bool
    pool: list[int]  # patients it is sent to outside bulk sends
    bulk_slots: list[tuple[int, int]] = field(default_factory=list)  # ordinal -> (bulk job, position)
    fixed: list[Fixed] = field(default_factory=list)  # generated before the template's random messages
    fixed_ids: list[int] = field(default_factory=list)  # their message ids (as 128-bit numbers), once generated


@dataclass
class ClinicPlan:
    tenant_id: uuid.UUID
    slug: str
    name: str
    name_ar: str
    phone: str
    email_domain: str
    admin_id: uuid.UUID
    doctors: tuple[tuple[str, str, str], ...]
    departments_ar: dict[str, str]
    calendar: LocalCalendar
    patients: PatientData
    templates: list[TemplatePlan]
    bulk_jobs: list[BulkPlan]
    sms_sender: str
    messages: int
    template_sequence: list[int] = field(default_factory=list)
    template_counts: list[int] = field(default_factory=list)  # messages per template (fixed ones made room for)


# Share of each template in the history (channels: 60% SMS, 30% WhatsApp, 10% e-mail).
TEMPLATE_WEIGHTS = {
    "appointment_reminder": 39, "appointment_cancellation": 6, "lab_results_ready": 15,
    "appointment_confirmation": 21, "vaccination_due": 9, "holiday_hours": 10,
    # only their fixed messages (the reminders and acknowledgements of the demo's appointments)
    "appointment_reminder_whatsapp": 0, "appointment_cancelled_by_reply": 0,
}
BULK_SHARE = {"vaccination_due": 0.8, "holiday_hours": 1.0}  # of a template's messages, when jobs allow


def plan_bulk(plan: ClinicPlan, rng: random.Random) -> None:
    """Draw each message's template and give bulk jobs the first messages of their template."""
    weights = [TEMPLATE_WEIGHTS.get(t.code, 1) for t in plan.templates]
    plan.template_sequence = rng.choices(range(len(plan.templates)), weights=weights, k=plan.messages)
    counts = [0] * len(plan.templates)
    for k in plan.template_sequence:
        counts[k] += 1
    make_room(counts, [len(t.fixed) for t in plan.templates])
    plan.template_counts = counts
    for k, tmpl in enumerate(plan.templates):
        jobs = [j for j, job in enumerate(plan.bulk_jobs) if job.template == k]
        want = int(counts[k] * BULK_SHARE.get(tmpl.code, 0.0))
        capacity = sum(len(plan.bulk_jobs[j].audience) for j in jobs)
        want = min(want, capacity)
        slots: list[tuple[int, int]] = []
        for j in jobs:  # fill each job in proportion to its audience
            job = plan.bulk_jobs[j]
            share = round(want * len(job.audience) / capacity) if capacity else 0
            share = min(share, len(job.audience), want - len(slots))
            job.count = share
            slots.extend((j, pos) for pos in range(share))
        tmpl.bulk_slots = slots


def make_room(counts: list[int], needed: list[int]) -> None:
    """Give every template at least ``needed`` messages, taken from the templates with most to spare."""
    for k, wanted in enumerate(needed):
        while counts[k] < wanted:
            donor = max((j for j in range(len(counts)) if j != k), key=lambda j: counts[j] - needed[j])
            spare = counts[donor] - needed[donor]
            if spare <= 0:
                raise ValueError("the demo's fixed messages do not fit in its share of the history")
            moved = min(spare, wanted - counts[k])
            counts[donor] -= moved
            counts[k] += moved


# --- rendering --------------------------------------------------------------------------------

def sms_segments(body: str) -> int:
    """SMS parts as the app counts them (``app.pricing``)."""
    return pricing.segments("sms", body)


def substitute(source: str, values: dict[str, str]) -> str:
    """A simple ``{{ name }}`` replacement (the seeder knows its own templates)."""
    for name, value in values.items():
        source = source.replace("{{ " + name + " }}", value)
    return source


@dataclass(frozen=True, slots=True)
class Entry:
    """Everything about one (template, patient) pair that does not change from message to message."""

    patient_id: uuid.UUID
    recipient: str
    language: str
    subject: str
    body: str  # a format string with {0} (date) and {1} (time) when ``dated``
    pg_body: str  # the same, escaped for COPY
    dated: bool
    segments: int
    price: Decimal
    pg_head: str  # "patient_id\trecipient\tlanguage\tsubject\t" + the template's part, for COPY


def make_entry(plan: ClinicPlan, tmpl: TemplatePlan, p: int) -> Entry:
    pat = plan.patients
    lang = pat.language[p]
    ar = lang == "ar"
    doctor_en, doctor_ar, department = plan.doctors[pat.doctor[p]]
    values = {
        "patient_name": pat.name_ar[p] if ar else pat.name_en[p],
        "doctor_name": doctor_ar if ar else doctor_en,
        "department": plan.departments_ar.get(department, department) if ar else department,
        "clinic_name": plan.name_ar if ar else plan.name,
        "clinic_phone": plan.phone,
    }
    source = tmpl.body_ar if ar else tmpl.body_en
    dated = "{{ appointment_date }}" in source or "{{ appointment_time }}" in source
    # As the app renders it: a number inside Arabic text keeps its order (``app.bidi``: a mark before
    # +966..., 2026-12-06, 09:30), so the sample date and time (shaped like real ones) get their marks too.
    sample = keep_ltr_order(substitute(source, {**values, "appointment_date": "2000-01-01",
                                                "appointment_time": "00:00"}))
    body = sample
    if dated:
        body = body.replace("{", "{{").replace("}", "}}").replace("2000-01-01", "{0}").replace("00:00", "{1}")
    subject = substitute(tmpl.subject_ar if ar else tmpl.subject_en, values) if tmpl.channel == "email" else ""
    segments = pricing.segments(tmpl.channel, sample)
    price = pricing.list_price(tmpl.channel, segments)
    recipient = (pat.email[p] or "") if tmpl.channel == "email" else pat.phone[p]
    head = (f"{pat.ids[p].hex}\t{pg_escape(recipient)}\t{lang}\t{pg_escape(subject)}\t{plan.tenant_id.hex}\t"
            f"{tmpl.id.hex}\t{tmpl.version_id.hex}\t{tmpl.channel}\t{tmpl.message_class}\t"
            f"{'t' if tmpl.urgent else 'f'}\t{segments}")
    return Entry(pat.ids[p], recipient, lang, subject, body, pg_escape(body), dated, segments, price, head)


# --- generation -------------------------------------------------------------------------------

UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))  # random 128 bits -> a version 4 UUID: clear these,
UUID_SET = (0x4 << 76) | (0x2 << 62)  # then set these

# A generated message: (id, entry, template, bulk job or -1, body, outcome, created, scheduled,
# queued, claimed, sent, delivered, read, finished, updated, provider message id bits, is_test)
Row = tuple[int, Entry, int, int, str, Outcome, int, int | None, int | None, int | None, int | None,
            int | None, int | None, int | None, int, int | None, bool]


# First appointment day after the message (local days) and how many days it may spread over.
APPOINTMENT_AHEAD = {"appointment_reminder": (1, 0), "appointment_cancellation": (1, 5)}
DEFAULT_AHEAD = (2, 10)
_SCRAMBLE = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: multiplying by it permutes 128-bit numbers
_MASK128 = (1 << 128) - 1


def generate(plan: ClinicPlan, clock: Clock, rng: random.Random, *, pg: bool) -> Iterator[list[Row]]:
    """The clinic's messages, template by template, in chunks. ``pg`` picks COPY-escaped bodies."""
    rand = rng.random
    bits = rng.getrandbits
    cal = plan.calendar
    now_s = clock.now_s
    recent_cut = now_s - LATEST_EVENT
    dates = cal.dates
    base_sod = cal.base_sod
    times = APPOINTMENT_TIMES
    n_times = len(times)
    n_read, n_undelivered = len(READ_DELAYS), len(UNDELIVERED_DELAYS)
    n_failed_late, n_cancel = len(FAILED_LATE_DELAYS), len(CANCEL_DELAYS)
    bulk_starts = [job.start_s for job in plan.bulk_jobs]
    audiences = [job.audience for job in plan.bulk_jobs]
    counts = plan.template_counts
    if not counts:
        counts = [0] * len(plan.templates)
        for k in plan.template_sequence:
            counts[k] += 1
    recent_left = dict(RECENT_LIMITS)
    chunk: list[Row] = []
    for k, tmpl in enumerate(plan.templates):
        n = counts[k]
        channel = tmpl.channel
        table = outcome_table(channel, bulk=False)
        bulk_table = outcome_table(channel, bulk=True)
        n_table, n_bulk_table = len(table), len(bulk_table)
        suppressed = _o(SUPPRESSED, None, SUPPRESSED_REASON[channel])
        opted_out = plan.patients.opted_out[channel]
        delays = DELIVERY_DELAYS[channel]
        n_delays = len(delays)
        rate = SEND_RATE[channel]
        cache: dict[int, Entry] = {}
        pool = tmpl.pool
        n_pool = len(pool)
        ahead, spread = APPOINTMENT_AHEAD.get(tmpl.code, DEFAULT_AHEAD)
        slots = tmpl.bulk_slots[:n]
        n_bulk = len(slots)
        fixed = tmpl.fixed[:n - n_bulk]
        for f in fixed:
            row = _fixed_row(plan, tmpl, k, f, clock, rng, cache, bulk_table, suppressed, pg=pg)
            tmpl.fixed_ids.append(row[0])
            chunk.append(row)
        n -= len(fixed)  # the bulk and random messages below fill what is left
        hour_picks = rng.choices(cal.hours, cum_weights=cal.cum_weights, k=n - n_bulk)
        for r in range(n):
            scheduled = None
            if r < n_bulk:
                job, pos = slots[r]
                p = audiences[job][pos]
                created = bulk_starts[job]
                claimed = created + 1 + pos // rate
                outcome = bulk_table[int(rand() * n_bulk_table)]
            else:
                job = -1
                p = pool[int(rand() * n_pool)]
                outcome = table[int(rand() * n_table)]
                kind = outcome.kind
                if kind in RECENT_KINDS:
                    if recent_left[kind] <= 0:  # a big history has no more of these
                        outcome = table[0]
                        created = hour_picks[r - n_bulk] * 3600 + int(rand() * 3600)
                    else:
                        recent_left[kind] -= 1
                        if kind == SCHEDULED:
                            created = now_s - 60 - int(rand() * 172_800)
                            scheduled = now_s + 3600 + int(rand() * 172_800)
                        elif kind == UNKNOWN:
                            created = now_s - 120 - int(rand() * 21_600)
                        else:
                            created = now_s - 5 - int(rand() * 55)
                else:
                    created = hour_picks[r - n_bulk] * 3600 + int(rand() * 3600)
                claimed = created + 1
            cut = opted_out.get(p)
            if cut is not None and created >= cut:
                outcome = suppressed
            kind = outcome.kind
            entry = cache.get(p)
            if entry is None:
                entry = cache[p] = make_entry(plan, tmpl, p)
            if entry.dated:
                day = (created + base_sod) // 86400 + ahead + (int(rand() * spread) if spread else 0)
                body = (entry.pg_body if pg else entry.body).format(dates[day], times[int(rand() * n_times)])
            else:
                body = entry.pg_body if pg else entry.body
            queued: int | None = created
            sent = delivered = read = finished = None
            if kind == DELIVERED or kind == READ:
                sent = claimed + 1
                delivered = sent + delays[int(rand() * n_delays)]
                if kind == READ:
                    updated = read = finished = delivered + READ_DELAYS[int(rand() * n_read)]
                else:
                    updated = delivered
            elif kind == SENT:
                updated = sent = claimed + 1
            elif kind == UNDELIVERED:
                sent = claimed + 1
                updated = finished = sent + UNDELIVERED_DELAYS[int(rand() * n_undelivered)]
            elif kind == FAILED_API:
                updated = finished = claimed + 1
            elif kind == FAILED_LATE:
                sent = claimed + 1
                updated = finished = sent + FAILED_LATE_DELAYS[int(rand() * n_failed_late)]
            elif kind == SUPPRESSED:
                claimed = None
                updated = finished = created + 1
            elif kind == UNKNOWN:
                updated = claimed + 15
            elif kind == SENDING:
                updated = claimed
            elif kind == CANCELLED:
                queued = claimed = None
                scheduled = created + 86_400
                updated = finished = created + CANCEL_DELAYS[int(rand() * n_cancel)]
            else:  # SCHEDULED or QUEUED
                claimed = None
                if kind == SCHEDULED:
                    queued = None
                    scheduled = scheduled or created + 86_400
                updated = created
            if created > recent_cut and updated >= now_s:  # events cannot lie in the future
                outcome, sent, delivered, read, finished, updated, scheduled, queued, claimed = _settle_recent(
                    outcome, now_s, created, claimed, sent, delivered, scheduled)
                kind = outcome.kind
            uid = (bits(128) & UUID_CLEAR) | UUID_SET
            chunk.append((uid, entry, k, job, body, outcome, created, scheduled, queued, claimed, sent, delivered,
                          read, finished, updated, (uid * _SCRAMBLE) & _MASK128 if kind in PRICED_KINDS else None,
                          (uid & 0x3FF) < 5))  # about 0.5% are tests
            if len(chunk) >= CHUNK_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


_STILL_DELIVERED, _STILL_SENT, _STILL_SCHEDULED = _o(DELIVERED), _o(SENT), _o(SCHEDULED)
_ANSWERED = {"whatsapp": _o(READ), "sms": _o(DELIVERED), "email": _o(SENT)}


def _fixed_row(plan: ClinicPlan, tmpl: TemplatePlan, k: int, f: Fixed, clock: Clock, rng: random.Random,
               cache: dict[int, Entry], table: list[Outcome], suppressed: Outcome, *, pg: bool) -> Row:
    """One fixed message (see the module docstring): its outcome drawn like a bulk send's (it went out
    at its time), or read / delivered when the patient answered it; suppressed for an opted-out patient."""
    p, created = f.patient, f.created
    entry = cache.get(p)
    if entry is None:
        entry = cache[p] = make_entry(plan, tmpl, p)
    source = entry.pg_body if pg else entry.body
    body = source.format(f.date, f.time) if entry.dated else source
    claimed: int | None = created + 1
    outcome = _ANSWERED[tmpl.channel] if f.answered_at is not None else table[int(rng.random() * len(table))]
    cut = plan.patients.opted_out[tmpl.channel].get(p)
    if cut is not None and created >= cut:
        outcome = suppressed
    kind = outcome.kind
    sent = delivered = read = finished = None
    if kind in (DELIVERED, READ):
        sent = created + 2
        delivered = sent + rng.choice(DELIVERY_DELAYS[tmpl.channel])
        if kind == READ:
            late = delivered + rng.choice(READ_DELAYS)
            read = late if f.answered_at is None else max(delivered + 1, f.answered_at - rng.randrange(5, 60))
            updated = finished = read
        else:
            updated = delivered
    elif kind == SENT:
        updated = sent = created + 2
    elif kind == UNDELIVERED:
        sent = created + 2
        updated = finished = sent + rng.choice(UNDELIVERED_DELAYS)
    elif kind == FAILED_API:
        updated = finished = created + 2
    elif kind == FAILED_LATE:
        sent = created + 2
        updated = finished = sent + rng.choice(FAILED_LATE_DELAYS)
    else:  # suppressed (the bulk table has no other kinds)
        claimed = None
        updated = finished = created + 1
    scheduled = None
    queued: int | None = created
    if created > clock.now_s - LATEST_EVENT and updated >= clock.now_s:  # events cannot lie in the future
        outcome, sent, delivered, read, finished, updated, scheduled, queued, claimed = _settle_recent(
            outcome, clock.now_s, created, claimed, sent, delivered, scheduled)
        kind = outcome.kind
    uid = (rng.getrandbits(128) & UUID_CLEAR) | UUID_SET
    return (uid, entry, k, -1, body, outcome, created, scheduled, queued, claimed, sent, delivered, read, finished,
            updated, (uid * _SCRAMBLE) & _MASK128 if kind in PRICED_KINDS else None, False)


def _settle_recent(outcome: Outcome, now_s: int, created: int, claimed: int | None, sent: int | None,
                   delivered: int | None, scheduled: int | None) -> tuple[Any, ...]:
    """Roll a recent message back to the last state it can have reached by now."""
    if outcome.kind == CANCELLED:  # not cancelled yet: still waiting for its time
        return _STILL_SCHEDULED, None, None, None, None, created, scheduled, None, None
    if delivered is not None and delivered < now_s:
        return _STILL_DELIVERED, sent, delivered, None, None, delivered, None, created, claimed
    return _STILL_SENT, sent, None, None, None, sent, None, created, claimed
