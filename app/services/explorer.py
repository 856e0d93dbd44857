"""The message explorer: filter, search, page through and open the messages of one clinic.

A ``MessageFilter`` round-trips through URL query parameters (``to_params`` / ``from_params``),
so a filtered view or one message can be shared as a link. Pages are read with keyset
pagination on ``(created_at, id)``: a ``Cursor`` names the last row shown and the next page
starts strictly after it, so a page at any depth costs the same and rows arriving meanwhile
never shift the pages already seen (no OFFSET anywhere). When the filter has several values of
one kind (statuses, channels, the patients a name search found), each value is read from its
own ordered index scan (a small ``LIMIT`` query each) and the reads are merged by time.

Counts are exact up to ``COUNT_CAP``; beyond it a filter the reporting rollups can answer is counted
as the Dashboard counts it (exact as of the rollups' last refresh), any other gets PostgreSQL's
planner estimate, marked as an estimate (``Total.exact`` is False). On SQLite, which has no
estimate, counts are exact.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, union_all

from app.analytics.store import Period, grouped
from app.errors import ConflictError, NotFoundError, ValidationError
from app.phones import phone_search_key
from app.providers.error_codes import ErrorInfo, explain
from app.search_text import clean_search, contains
from app.services import messaging, tenants
from app.services.bulk.jobs import status_counts
from app.services.contacts import shown_contact
from app.services.messaging import SendResult
from app.services.permissions import Actor, Permission, authorize
from db.enums import (
    BULK_JOB_MOVING,
    CANCELLABLE,
    RETRYABLE,
    BulkJobStatus,
    Channel,
    Language,
    MessageClass,
    MessageStatus,
    Outcome,
    outcome,
    outcome_conditions,
)
from db.models import (
    BulkJob,
    Message,
    MessageLog,
    MessageRollup,
    MessageTemplate,
    MessageTemplateVersion,
    Patient,
    User,
)
from db.tenancy import TenantSession
from db.types import utcnow

PAGE_SIZE = 50
COUNT_CAP = 10_000
RETRY_ALL_CAP = 5_000
MAX_FAN_OUT = 25  # more values than this are read with a plain IN (...)
MAX_NAME_MATCHES = 20
MAX_ERROR_CODE = 32  # the column's length: a longer code matches nothing
PERIODS: dict[str, str] = {"7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days",
                           "custom": "Custom dates", "all": "All time"}
_PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90}


# --- the filter and its URL form ----------------------------------------------------------------


@dataclass(frozen=True)
class MessageFilter:
    """What the staff member asked to see. Every field has a URL form (see ``to_params``)."""

    period: str = "7d"
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    statuses: tuple[MessageStatus, ...] = ()
    outcomes: tuple[Outcome, ...] = ()  # delivered, failed, ... as every screen counts them (db.enums)
    channels: tuple[Channel, ...] = ()
    template_id: uuid.UUID | None = None
    bulk_job_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    error_code: str = ""
    include_test: bool = False
    search: str = ""
    oldest_first: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", tuple(MessageStatus(s) for s in self.statuses))
        object.__setattr__(self, "outcomes", tuple(Outcome(o) for o in self.outcomes))
        object.__setattr__(self, "channels", tuple(Channel.parse(c) for c in self.channels))
        if self.period not in PERIODS:
            raise ValidationError(f"Unknown period '{self.period}'; use one of {', '.join(PERIODS)}.",
                                  field="period")
        if self.period == "custom" and self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("The start date is after the end date.", field="date_from")
        object.__setattr__(self, "search", clean_search(self.search))
        object.__setattr__(self, "error_code", clean_search(self.error_code, field="error_code",
                                                            label="The error code", max_chars=MAX_ERROR_CODE))

    def to_params(self) -> dict[str, str]:
        """The URL query parameters of this filter (defaults left out)."""
        params: dict[str, str] = {}
        if self.period != "7d":
            params["period"] = self.period
        if self.period == "custom":
            if self.date_from:
                params["from"] = self.date_from.isoformat()
            if self.date_to:
                params["to"] = self.date_to.isoformat()
        if self.statuses:
            params["status"] = ",".join(s.value for s in self.statuses)
        if self.outcomes:
            params["outcome"] = ",".join(o.value for o in self.outcomes)
        if self.channels:
            params["channel"] = ",".join(c.value for c in self.channels)
        for key, value in (("template", self.template_id), ("bulk", self.bulk_job_id), ("patient", self.patient_id)):
            if value:
                params[key] = str(value)
        if self.error_code:
            params["error"] = self.error_code
        if self.include_test:
            params["test"] = "1"
        if self.search:
            params["q"] = self.search
        if self.oldest_first:
            params["sort"] = "oldest"
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> MessageFilter:
        """Read a filter back from URL query parameters; a bad value raises ValidationError naming it."""
        return cls(
            period=params.get("period", "7d"),
            date_from=_date(params.get("from"), "from"),
            date_to=_date(params.get("to"), "to"),
            statuses=tuple(_enum_list(MessageStatus, params.get("status"), "status")),
            outcomes=tuple(_enum_list(Outcome, params.get("outcome"), "outcome")),
            channels=tuple(_enum_list(Channel, params.get("channel"), "channel")),
            template_id=_uuid(params.get("template"), "template"),
            bulk_job_id=_uuid(params.get("bulk"), "bulk"),
            patient_id=_uuid(params.get("patient"), "patient"),
            error_code=params.get("error") or "",
            include_test=params.get("test") in ("1", "true", "yes"),
            search=params.get("search") or params.get("q") or "",
            oldest_first=params.get("sort") == "oldest",
        )

    def describe(self) -> dict[str, Any]:
        """The filter for an audit event (the URL form)."""
        return self.to_params() or {"period": self.period}


def _date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"'{value}' is not a date (YYYY-MM-DD) in '{name}'.", field=name) from None


def _uuid(value: str | None, name: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(f"'{value}' is not a valid id in '{name}'.", field=name) from None


def _enum_list(enum_cls: type, value: str | None, name: str) -> list[Any]:
    items = []
    for part in (value or "").split(","):
        if part.strip():
            try:
                items.append(enum_cls(part.strip().lower()))
            except ValueError:
                raise ValidationError(f"Unknown {name} '{part.strip()}'.", field=name) from None
    return list(dict.fromkeys(items))


def time_window(flt: MessageFilter, timezone: str, now: dt.datetime | None = None
                ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The filter's period as UTC bounds ``[start, end)``; days are the clinic's local days. "Last N
    days" starts where the Dashboard's does (``Period.last_days``), so both count the same messages."""
    now = now or utcnow()
    if flt.period in _PERIOD_DAYS:
        return Period.last_days(_PERIOD_DAYS[flt.period], now=now).start, None
    if flt.period == "custom":
        zone = ZoneInfo(timezone)

        def midnight(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)

        start = midnight(flt.date_from) if flt.date_from else None
        end = midnight(flt.date_to + dt.timedelta(days=1)) if flt.date_to else None
        return start, end
    return None, None


# --- cursors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it."""

    created_at: dt.datetime
    id: uuid.UUID

    def encode(self) -> str:
        micros = int(self.created_at.timestamp()) * 1_000_000 + self.created_at.microsecond
        return f"{micros}-{self.id.hex}"

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            micros, hex_id = value.split("-", 1)
            at = dt.datetime.fromtimestamp(int(micros) // 1_000_000, dt.UTC).replace(
                microsecond=int(micros) % 1_000_000)
            return cls(at, uuid.UUID(hex_id))
        except (ValueError, OverflowError, OSError):
            raise ValidationError("The page link is not valid; showing the first page.", field="after") from None


# --- search -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchTerms:
    """What a search box entry resolved to: exact recipients and/or patients found by name."""

    recipients: tuple[str, ...] = ()
    patient_ids: tuple[uuid.UUID, ...] = ()
    matched_nothing: bool = False


def resolve_search(session: TenantSession, text: str, region: str) -> SearchTerms:
    """A phone number however typed, an e-mail address, an MRN, or part of a name in English or Arabic."""
    text = text.strip()
    if not text:
        return SearchTerms()
    if "@" in text:
        return SearchTerms(recipients=(text.lower(),))
    phone = phone_search_key(text, region)
    if phone:
        return SearchTerms(recipients=(phone,))
    ids = tuple(session.scalars(
        select(Patient.id).where(Patient.deleted_at.is_(None), or_(
            Patient.mrn == text, contains(Patient.name_en, text), contains(Patient.name_ar, text)))
        .order_by(Patient.name_en).limit(MAX_NAME_MATCHES)))
    return SearchTerms(patient_ids=ids, matched_nothing=not ids)


# --- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clinic:
    id: uuid.UUID
    timezone: str
    region: str


def clinic_of(session: TenantSession) -> Clinic:
    tenant = tenants.current(session)
    return Clinic(tenant.id, tenant.timezone, tenant.default_region)


@dataclass(frozen=True)
class Query:
    """A filter turned into SQL conditions: the common ones and the alternatives merged by time."""

    common: list[ColumnElement[bool]]
    branches: list[ColumnElement[bool]] = field(default_factory=list)
    empty: bool = False

    def where_all(self) -> list[ColumnElement[bool]]:
        """Every condition with the alternatives as one OR (for counting, where order does not matter)."""
        if not self.branches:
            return list(self.common)
        return [*self.common, or_(*self.branches) if len(self.branches) > 1 else self.branches[0]]


def build_query(session: TenantSession, flt: MessageFilter, *, now: dt.datetime | None = None) -> Query:
    clinic = clinic_of(session)
    start, end = time_window(flt, clinic.timezone, now)
    common: list[ColumnElement[bool]] = [Message.tenant_id == clinic.id]
    if start is not None:
        common.append(Message.created_at >= start)
    if end is not None:
        common.append(Message.created_at < end)
    if not flt.include_test:
        common.append(Message.is_test.is_(False))
    if flt.template_id:
        common.append(Message.template_id == flt.template_id)
    if flt.bulk_job_id:
        common.append(Message.bulk_job_id == flt.bulk_job_id)
    if flt.patient_id:
        common.append(Message.patient_id == flt.patient_id)
    if flt.error_code:
        common.append(Message.error_code == flt.error_code)
    terms = resolve_search(session, flt.search, clinic.region)
    if terms.matched_nothing:
        return Query(common, empty=True)
    # One kind of alternative is fanned out (each value its own ordered index scan); the rest are IN lists.
    alternatives: list[list[ColumnElement[bool]]] = [
        [Message.recipient == r for r in terms.recipients],
        [Message.patient_id == p for p in terms.patient_ids],
        [Message.status == s.value for s in flt.statuses],
        [c for o in flt.outcomes for c in outcome_conditions(Message.channel, Message.status, o)],
        [Message.channel == c.value for c in flt.channels],
    ]
    branches: list[ColumnElement[bool]] = []
    for conditions in alternatives:
        if not conditions:
            continue
        if not branches and len(conditions) <= MAX_FAN_OUT:
            branches = conditions
        else:
            common.append(or_(*conditions) if len(conditions) > 1 else conditions[0])
    return Query(common, branches)


_ROW_COLUMNS = (Message.id, Message.created_at, Message.status, Message.channel, Message.recipient,
                Message.patient_id, Message.template_id, Message.error_code, Message.is_test,
                Message.retry_of_id, Message.segments, Message.price, Message.price_unit)


def _after(cursor: Cursor, oldest_first: bool) -> ColumnElement[bool]:
    """Strictly after ``cursor`` in the page order; written so the created_at bound uses the index."""
    if oldest_first:
        return and_(Message.created_at >= cursor.created_at,
                    or_(Message.created_at > cursor.created_at, Message.id > cursor.id))
    return and_(Message.created_at <= cursor.created_at,
                or_(Message.created_at < cursor.created_at, Message.id < cursor.id))


def page_statement(query: Query, *, after: Cursor | None, limit: int, oldest_first: bool,
                   columns: Sequence[Any] = _ROW_COLUMNS) -> Select[Any]:
    """The keyset query for one page.

    With alternatives (several recipients or patients, statuses, channels) each one reads at most
    ``limit`` rows in page order from its own index, and one outer ORDER BY ... LIMIT merges them:
    one round trip, and no alternative is read past the page (an OR or IN list would read all of
    their rows and sort them).
    """
    keyset = [_after(after, oldest_first)] if after else []

    def order(table: Any) -> tuple[Any, Any]:
        if oldest_first:
            return table.created_at.asc(), table.id.asc()
        return table.created_at.desc(), table.id.desc()

    if len(query.branches) <= 1:
        return (select(*columns).where(*query.common, *query.branches, *keyset)
                .order_by(*order(Message)).limit(limit))
    # The arms read only the keys (building 20 full-width subqueries costs more than running them),
    # each wrapped as a subquery because SQLite refuses ORDER BY / LIMIT directly inside a UNION.
    arms = [select(arm.c.created_at, arm.c.id) for arm in (
        select(Message.created_at, Message.id).where(*query.common, branch, *keyset)
        .order_by(*order(Message)).limit(limit).subquery()
        for branch in query.branches)]
    merged = union_all(*arms).subquery()
    page = select(merged.c.created_at, merged.c.id).order_by(*order(merged.c)).limit(limit).subquery()
    return (select(*columns).join(page, Message.id == page.c.id)
            .where(*query.common)  # the clinic's condition on this read too, though the keys came from its rows
            .order_by(*order(page.c)))


def read_page(session: TenantSession, query: Query, *, after: Cursor | None, limit: int,
              oldest_first: bool) -> list[Any]:
    """Up to ``limit`` rows in page order (see ``page_statement``).

    Runs on the session's connection, past the ORM: the statement already carries the clinic's
    ``tenant_id`` condition (``build_query``), and skipping the ORM keeps a page well under 50 ms.
    """
    statement = page_statement(query, after=after, limit=limit, oldest_first=oldest_first)
    return list(session.connection().execute(statement).all())


# --- pages and counts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRow:
    id: uuid.UUID
    created_at: dt.datetime
    status: MessageStatus
    channel: Channel
    recipient: str
    patient_id: uuid.UUID | None
    patient_name: str
    template_name: str
    error_code: str | None
    is_test: bool
    is_retry: bool
    segments: int
    price: Decimal | None
    price_unit: str | None

    @property
    def can_retry(self) -> bool:
        return self.status in RETRYABLE

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE


@dataclass(frozen=True)
class MessagePage:
    rows: list[MessageRow]
    next_cursor: Cursor | None  # None on the last page


def list_messages(session: TenantSession, actor: Actor, flt: MessageFilter, *, after: Cursor | None = None,
                  limit: int = PAGE_SIZE, now: dt.datetime | None = None) -> MessagePage:
    """One page of the filtered messages, newest first (or oldest first), starting after ``after``."""
    authorize(session, actor, Permission.VIEW_MESSAGES)
    if not 1 <= limit <= 500:
        raise ValidationError("A page has between 1 and 500 rows.", field="limit")
    query = build_query(session, flt, now=now)
    if query.empty:
        return MessagePage([], None)
    raw = read_page(session, query, after=after, limit=limit + 1, oldest_first=flt.oldest_first)
    more = len(raw) > limit
    raw = raw[:limit]
    names = _patient_names(session, {r.patient_id for r in raw if r.patient_id})
    templates = _template_names(session, {r.template_id for r in raw if r.template_id})
    rows = [MessageRow(
        id=r.id, created_at=r.created_at, status=MessageStatus(r.status), channel=Channel(r.channel),
        recipient=shown_contact(actor, r.recipient) or "", patient_id=r.patient_id,
        patient_name=names.get(r.patient_id, ""), template_name=templates.get(r.template_id, ""),
        error_code=r.error_code, is_test=r.is_test, is_retry=r.retry_of_id is not None, segments=r.segments,
        price=r.price, price_unit=r.price_unit) for r in raw]
    last = raw[-1] if raw else None
    return MessagePage(rows, Cursor(last.created_at, last.id) if more and last else None)


def _patient_names(session: TenantSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = session.connection().execute(select(Patient.id, Patient.name_en, Patient.name_ar).where(
        Patient.tenant_id == session.tenant_id, Patient.id.in_(ids)))
    return {pid: en or ar for pid, en, ar in rows}


def _template_names(session: TenantSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = session.connection().execute(select(MessageTemplate.id, MessageTemplate.name).where(
        MessageTemplate.tenant_id == session.tenant_id, MessageTemplate.id.in_(ids)))
    return {template_id: name for template_id, name in rows}


@dataclass(frozen=True)
class Total:
    value: int
    exact: bool

    @property
    def label(self) -> str:
        if self.exact:
            return f"{self.value:,} message{'s' if self.value != 1 else ''}"
        return f"about {self.value:,} messages (estimate)"


def count_messages(session: TenantSession, actor: Actor, flt: MessageFilter, *, cap: int = COUNT_CAP,
                   now: dt.datetime | None = None) -> Total:
    """Exact up to ``cap``; above it PostgreSQL's planner estimate, marked inexact. SQLite has no
    estimate to offer, so there the count is always exact (its databases are small)."""
    authorize(session, actor, Permission.VIEW_MESSAGES)
    query = build_query(session, flt, now=now)
    if query.empty:
        return Total(0, True)
    if session.connection().dialect.name != "postgresql":
        return Total(session.scalar(select(func.count()).select_from(Message).where(*query.where_all())) or 0, True)
    capped = select(literal(1)).select_from(Message).where(*query.where_all()).limit(cap + 1).subquery()
    counted = session.scalar(select(func.count()).select_from(capped)) or 0
    if counted <= cap:
        return Total(counted, True)
    reported = _reported_total(session, flt, now or utcnow())
    if reported is not None:
        return Total(max(reported, cap + 1), True)
    return Total(max(_planner_estimate(session, query), cap + 1), False)


def _reported_total(session: TenantSession, flt: MessageFilter, now: dt.datetime) -> int | None:
    """The filter's total as the Dashboard counts it (the reporting rollups for closed hours, this
    hour's rows), when the filter is made only of what the rollups keep: "last N days", channels,
    statuses, outcomes, template, bulk send, error code, no test messages; else None."""
    if flt.period not in _PERIOD_DAYS or flt.search or flt.patient_id or flt.include_test:
        return None

    def conditions(columns: Any) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for wanted, column in ((flt.template_id, columns.template_id), (flt.bulk_job_id, columns.bulk_job_id),
                               (flt.error_code, columns.error_code)):
            if wanted:
                found.append(column == wanted)
        if flt.statuses:
            found.append(columns.status.in_([s.value for s in flt.statuses]))
        if flt.outcomes:
            found.append(or_(*[condition for o in flt.outcomes
                               for condition in outcome_conditions(columns.channel, columns.status, o)]))
        if flt.channels:
            found.append(columns.channel.in_([c.value for c in flt.channels]))
        return found

    period = Period.last_days(_PERIOD_DAYS[flt.period], now=now)
    rows = grouped(session, period, ("channel",), where=conditions(MessageRollup), raw_where=conditions(Message),
                   now=now, measures=("messages",))
    return sum(int(row["messages"]) for row in rows)


def _planner_estimate(session: TenantSession, query: Query) -> int:
    connection = session.connection()
    statement = select(literal(1)).select_from(Message).where(*query.where_all())
    sql, params = compiled_sql(statement, connection.dialect)
    plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def compiled_sql(statement: Any, dialect: Any) -> tuple[str, dict[str, Any]]:
    """``statement`` as driver SQL and its parameters (for EXPLAIN and COPY, which SQLAlchemy cannot run)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), dict(compiled.params)


# --- one message --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEvent:
    at: dt.datetime
    event: str
    from_status: MessageStatus | None
    to_status: MessageStatus | None
    provider: str | None
    error_code: str | None
    detail: str


@dataclass(frozen=True)
class MessageDetail:
    id: uuid.UUID
    created_at: dt.datetime
    status: MessageStatus
    status_reason: str
    channel: Channel
    message_class: MessageClass
    recipient: str
    patient_id: uuid.UUID | None
    patient_name: str
    language: Language
    subject: str
    body: str
    template_code: str | None
    template_name: str | None
    template_version: int | None
    sent_by: str
    bulk_job_id: uuid.UUID | None
    bulk_job_name: str | None
    provider: str | None
    provider_message_id: str | None
    sender: str | None
    segments: int
    price: Decimal | None
    price_unit: str | None
    is_test: bool
    attempts: int
    scheduled_at: dt.datetime | None
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    read_at: dt.datetime | None
    error_code: str | None
    error: ErrorInfo | None
    retry_of_id: uuid.UUID | None
    retried_as_id: uuid.UUID | None
    timeline: list[TimelineEvent]

    @property
    def can_retry(self) -> bool:
        return self.status in RETRYABLE and self.retried_as_id is None

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def is_moving(self) -> bool:
        """Still on its way (waiting, or with the provider awaiting its report): its status may change
        soon. The Outcome rule of every screen (``db.enums.outcome``): in progress until delivered,
        failed or not sent."""
        return outcome(self.channel, self.status) == Outcome.IN_PROGRESS


def message_detail(session: TenantSession, actor: Actor, message_id: uuid.UUID) -> MessageDetail:
    """Everything about one message of the clinic, with its lifecycle timeline (oldest event first)."""
    authorize(session, actor, Permission.VIEW_MESSAGES)
    m = session.get(Message, message_id)
    if m is None or m.tenant_id != session.tenant_id:
        raise NotFoundError("That message does not exist in your clinic.")
    template = session.get(MessageTemplate, m.template_id) if m.template_id else None
    version = session.get(MessageTemplateVersion, m.template_version_id) if m.template_version_id else None
    user = session.get(User, m.created_by_id) if m.created_by_id else None
    job = session.get(BulkJob, m.bulk_job_id) if m.bulk_job_id else None
    patient_name = _patient_names(session, {m.patient_id}).get(m.patient_id, "") if m.patient_id else ""
    retried_as = session.scalar(select(Message.id).where(Message.tenant_id == m.tenant_id,
                                                         Message.idempotency_key == f"retry:{m.id}"))
    logs = session.scalars(select(MessageLog).where(MessageLog.message_id == m.id)
                           .order_by(MessageLog.created_at, MessageLog.id)).all()
    timeline = [TimelineEvent(
        at=log.created_at, event=log.event, from_status=MessageStatus(log.from_status) if log.from_status else None,
        to_status=MessageStatus(log.to_status) if log.to_status else None, provider=log.provider,
        error_code=log.error_code, detail=log.detail) for log in logs]
    return MessageDetail(
        id=m.id, created_at=m.created_at, status=MessageStatus(m.status), status_reason=m.status_reason,
        channel=Channel(m.channel), message_class=MessageClass(m.message_class),
        recipient=shown_contact(actor, m.recipient) or "", patient_id=m.patient_id, patient_name=patient_name,
        language=Language(m.language), subject=m.subject, body=m.body,
        template_code=template.code if template else None, template_name=template.name if template else None,
        template_version=version.version if version else None,
        sent_by=(user.display_name or user.username) if user else ("bulk job" if job else "system or API"),
        bulk_job_id=m.bulk_job_id, bulk_job_name=job.name if job else None, provider=m.provider,
        provider_message_id=m.provider_message_id, sender=m.sender, segments=m.segments, price=m.price,
        price_unit=m.price_unit, is_test=m.is_test, attempts=m.attempts, scheduled_at=m.scheduled_at,
        sent_at=m.sent_at, delivered_at=m.delivered_at, read_at=m.read_at, error_code=m.error_code,
        error=explain(m.error_code), retry_of_id=m.retry_of_id, retried_as_id=retried_as, timeline=timeline)


# --- retry everything that failed in a filter ------------------------------------------------------


def retryable_ids(session: TenantSession, actor: Actor, flt: MessageFilter, *, cap: int = RETRY_ALL_CAP,
                  now: dt.datetime | None = None) -> list[uuid.UUID]:
    """The failed, undelivered and unknown messages in the filter that were not retried yet (at most ``cap``)."""
    authorize(session, actor, Permission.RETRY_MESSAGES)
    wanted = [s for s in (flt.statuses or RETRYABLE) if s in RETRYABLE]
    if not wanted:
        return []
    query = build_query(session, replace(flt, statuses=tuple(wanted)), now=now)
    if query.empty:
        return []
    ids = list(session.scalars(select(Message.id).where(*query.where_all())
                               .order_by(Message.created_at, Message.id).limit(cap + 1)))
    if len(ids) > cap:
        raise ValidationError(f"More than {cap:,} messages failed in this filter; narrow it (e.g. a shorter "
                              f"period or one template) and retry in parts.")
    retried: set[str] = set()
    for start in range(0, len(ids), 500):
        keys = [f"retry:{i}" for i in ids[start:start + 500]]
        retried.update(session.scalars(select(Message.idempotency_key).where(
            Message.tenant_id == session.tenant_id, Message.idempotency_key.in_(keys))))
    return [i for i in ids if f"retry:{i}" not in retried]


def retry_filtered(session: TenantSession, actor: Actor, flt: MessageFilter, *, expected: int,
                   now: dt.datetime | None = None) -> list[SendResult]:
    """Retry every retryable message of the filter, only if there are still exactly ``expected`` of them."""
    ids = retryable_ids(session, actor, flt, now=now)
    if not ids:
        raise ValidationError("There is nothing to retry in this filter.")
    if len(ids) != expected:
        raise ConflictError(f"The number of failed messages changed ({expected:,} -> {len(ids):,}); "
                            "check the count and confirm again.")
    return messaging.retry(session, actor, ids)


# --- choices for the filter widgets -------------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    templates: dict[uuid.UUID, str]  # id -> name, alphabetical
    bulk_jobs: dict[uuid.UUID, str]  # id -> name, newest first


def filter_options(session: TenantSession, actor: Actor, *, bulk_jobs: int = 100) -> FilterOptions:
    """The clinic's templates and recent bulk jobs, for the template and bulk-job filters."""
    authorize(session, actor, Permission.VIEW_MESSAGES)
    templates = session.execute(select(MessageTemplate.id, MessageTemplate.name).order_by(MessageTemplate.name))
    jobs = session.execute(select(BulkJob.id, BulkJob.name, BulkJob.created_at)
                           .order_by(BulkJob.created_at.desc()).limit(bulk_jobs))
    return FilterOptions({i: n for i, n in templates},
                         {i: f"{n or 'Bulk send'} ({at:%d %b %Y})" for i, n, at in jobs})


@dataclass(frozen=True)
class Preparation:
    """A bulk job still being prepared: its messages appear in the explorer as they are written."""

    written: int
    expected: int


def bulk_job_preparation(session: TenantSession, actor: Actor, job_id: uuid.UUID) -> Preparation | None:
    """How far the preparation of the bulk job the filter names has come; None once it is prepared
    (or it is not a job of this clinic). Read from the job's counters, not by counting its rows."""
    authorize(session, actor, Permission.VIEW_MESSAGES)
    job = session.get(BulkJob, job_id)
    if job is None or job.prepared_at is not None or BulkJobStatus(job.status) not in BULK_JOB_MOVING:
        return None
    written = sum(status_counts(session, job.id).values())
    return Preparation(written=written, expected=max(job.total_recipients or 0, written))
