"""Writing generated messages: COPY text for PostgreSQL, stored values for SQLite, and timelines.

The lifecycle timeline of each message (``message_logs``) is derived from the message's own
columns: by one ``INSERT ... SELECT`` on PostgreSQL (``pg_timelines``) and by the same rules in
Python on SQLite (``timeline``); the tests hold both to the same checks.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from app.demo.history import CLAIMED_KINDS, UUID_CLEAR, UUID_SET, ClinicPlan, Clock, Outcome, Row
from db.models import Message
from db.pgcopy import NULL, column_defaults, pg_escape, pg_text


def message_columns() -> set[str]:
    return set(Message.__table__.c.keys())


_KNOWN = (
    "id", "tenant_id", "patient_id", "bulk_job_id", "template_id", "template_version_id", "created_by_id",
    "channel", "message_class", "recipient", "language", "subject", "body", "status", "status_reason",
    "error_code", "provider", "provider_message_id", "segments", "price", "price_unit", "is_test", "urgent",
    "attempts", "scheduled_at", "queued_at", "sent_at", "delivered_at", "read_at", "finished_at",
    "created_at", "updated_at",
)
_OPTIONAL = ("enqueued_at", "claimed_at", "sender")  # filled when the schema has them


class MessageWriter:
    """Turns generated rows into the backend's bulk writes; counts what it wrote."""

    def __init__(self, conn: Connection, plan: ClinicPlan, clock: Clock, *, logs_from: int | None) -> None:
        self.conn = conn
        self.plan = plan
        self.clock = clock
        self.logs_from = logs_from  # write timelines for messages created at or after this second
        self.messages = 0
        self.logs = 0
        cols = message_columns()
        self.optional = [c for c in _OPTIONAL if c in cols]
        self.extra = column_defaults(Message.__table__, set(_KNOWN) | set(self.optional))
        self.bulk_ids = [job.id for job in plan.bulk_jobs]
        self.senders = {"sms": plan.sms_sender, "whatsapp": f"whatsapp:{plan.phone}",
                        "email": f"no-reply@{plan.email_domain}"}


class PgMessageWriter(MessageWriter):
    """COPY text lines; the timelines are derived afterwards in SQL (see ``pg_timelines``).

    A line is mostly glued from pieces prepared once per template, patient and outcome; the
    COPY data goes to the server from a background thread while the next chunk is generated.
    """

    def __init__(self, conn: Connection, plan: ClinicPlan, clock: Clock, *, logs_from: int | None,
                 table: str = "messages") -> None:
        super().__init__(conn, plan, clock, logs_from=logs_from)
        self.table = table
        has_sender = "sender" in self.optional
        stamps = [c for c in self.optional if c != "sender"]
        self.columns = ["id", "patient_id", "recipient", "language", "subject", "tenant_id", "template_id",
                        "template_version_id", "channel", "message_class", "urgent", "segments", "bulk_job_id",
                        "created_by_id", "body", "status", "status_reason", "error_code", "attempts", "provider",
                        *(["sender"] if has_sender else []), "provider_message_id", "price", "price_unit",
                        "is_test", "scheduled_at", "queued_at", "sent_at", "delivered_at", "read_at", "finished_at",
                        "created_at", "updated_at", *stamps, *self.extra]
        self.stamps = stamps
        self.extra_text = "".join("\t" + pg_text(v) for v in self.extra.values())
        self.owner_text = [f"\\N\t{t.created_by.hex if t.created_by else NULL}" for t in plan.templates]
        self.bulk_text = [f"{job_id.hex}\t{plan.admin_id.hex}" for job_id in self.bulk_ids]
        providers = {"sms": "twilio", "whatsapp": "twilio", "email": "smtp"}
        self.provider_text = [
            ((f"{NULL}\t{NULL}" if has_sender else NULL),
             (f"{providers[t.channel]}\t{pg_escape(self.senders[t.channel])}" if has_sender
              else providers[t.channel]))
            for t in plan.templates
        ]

    def copy(self, chunks: Iterator[list[Row]], progress: Callable[[int], None]) -> None:
        from psycopg.copy import QueuedLibpqWriter

        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        P, M, N = self.clock.prefix, self.clock.mmss_pg, NULL  # noqa: N806 - short names in the hot loop
        owner_text, bulk_text = self.owner_text, self.bulk_text
        provider_text = self.provider_text
        email = [t.channel == "email" for t in self.plan.templates]
        domain = self.plan.email_domain
        tail = self.extra_text + "\n"
        with_enqueued = "enqueued_at" in self.stamps
        with_claimed = "claimed_at" in self.stamps
        sql = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"
        with dbapi.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as copy:
            for chunk in chunks:
                lines = []
                append = lines.append
                for (uid, entry, k, job, body, outcome, created, scheduled, queued, claimed, sent, delivered,
                     read, finished, updated, pmid, is_test) in chunk:
                    if pmid is None:
                        money = "\\N\t\\N\t\\N"
                    elif email[k]:
                        money = f"{pmid:032x}@{domain}\t{entry.price}\tUSD"
                    else:
                        money = f"SM{pmid:032x}\t{entry.price}\tUSD"
                    q = N if queued is None else P[queued // 3600] + M[queued % 3600]
                    line = (
                        f"{uid:032x}\t{entry.pg_head}\t"
                        f"{bulk_text[job] if job >= 0 else owner_text[k]}\t{body}\t{outcome.pg}\t"
                        f"{provider_text[k][outcome.has_provider]}\t{money}\t{'t' if is_test else 'f'}\t"
                        f"{N if scheduled is None else P[scheduled // 3600] + M[scheduled % 3600]}\t{q}\t"
                        f"{N if sent is None else P[sent // 3600] + M[sent % 3600]}\t"
                        f"{N if delivered is None else P[delivered // 3600] + M[delivered % 3600]}\t"
                        f"{N if read is None else P[read // 3600] + M[read % 3600]}\t"
                        f"{N if finished is None else P[finished // 3600] + M[finished % 3600]}\t"
                        f"{P[created // 3600] + M[created % 3600]}\t{P[updated // 3600] + M[updated % 3600]}"
                    )
                    if with_enqueued:
                        line += "\t" + q
                    if with_claimed:
                        line += "\t" + (N if claimed is None else P[claimed // 3600] + M[claimed % 3600])
                    append(line + tail)
                copy.write("".join(lines))
                self.messages += len(chunk)
                progress(len(chunk))


class SqliteMessageWriter(MessageWriter):
    """executemany of plain INSERTs with values already in SQLite's stored form.

    Converting each value through SQLAlchemy's type machinery costs more than the insert
    itself, so UUIDs, timestamps and flags are formatted here directly; ``_check_formats``
    proves at start-up that the result is exactly what SQLAlchemy would have stored.
    """

    def __init__(self, conn: Connection, plan: ClinicPlan, clock: Clock, *, logs_from: int | None,
                 rng: random.Random) -> None:
        super().__init__(conn, plan, clock, logs_from=logs_from)
        self.rng_bits = rng.getrandbits
        self.columns = [*_KNOWN, *self.optional, *self.extra]
        dialect = conn.dialect
        table = Message.__table__
        self.extra_values = tuple(_stored(table.c[name], value, dialect) for name, value in self.extra.items())
        self.prices: dict[Decimal, Any] = {}
        self._price_column = table.c.price
        self.log_columns = ("id", "tenant_id", "message_id", "event", "from_status", "to_status", "provider",
                            "error_code", "detail", "created_at")
        _check_formats(conn, clock)

    def _price(self, price: Decimal) -> Any:
        stored = self.prices.get(price)
        if stored is None:
            stored = self.prices[price] = _stored(self._price_column, price, self.conn.dialect)
        return stored

    def write(self, chunks: Iterator[list[Row]], progress: Callable[[int], None]) -> None:
        ts = self.clock.sqlite
        plan = self.plan
        templates = plan.templates
        tenant = plan.tenant_id.hex
        admin = plan.admin_id.hex
        bulk = [job_id.hex for job_id in self.bulk_ids]
        owners = [t.created_by.hex if t.created_by else None for t in templates]
        ids = [(t.id.hex, t.version_id.hex) for t in templates]
        logs_from = self.logs_from
        optional = self.optional
        extra = self.extra_values
        bits = self.rng_bits
        insert_messages = (f"INSERT INTO messages ({', '.join(self.columns)}) "
                           f"VALUES ({', '.join('?' * len(self.columns))})")
        insert_logs = (f"INSERT INTO message_logs ({', '.join(self.log_columns)}) "
                       f"VALUES ({', '.join('?' * len(self.log_columns))})")
        for chunk in chunks:
            rows: list[tuple[Any, ...]] = []
            logs: list[tuple[Any, ...]] = []
            for (uid, entry, k, job, body, outcome, created, scheduled, queued, claimed, sent, delivered,
                 read, finished, updated, pmid, is_test) in chunk:
                tmpl = templates[k]
                channel = tmpl.channel
                provider = ("smtp" if channel == "email" else "twilio") if outcome.has_provider else None
                if pmid is None:
                    pm = None
                elif channel == "email":
                    pm = f"{pmid:032x}@{plan.email_domain}"
                else:
                    pm = f"SM{pmid:032x}"
                message_id = f"{uid:032x}"
                row = (
                    message_id, tenant, entry.patient_id.hex, bulk[job] if job >= 0 else None, ids[k][0],
                    ids[k][1], admin if job >= 0 else owners[k], channel, tmpl.message_class, entry.recipient,
                    entry.language, entry.subject, body, outcome.status, outcome.reason, outcome.error_code,
                    provider, pm, entry.segments, self._price(entry.price) if pm else None,
                    "USD" if pm else None, 1 if is_test else 0, 1 if tmpl.urgent else 0,
                    1 if outcome.kind in CLAIMED_KINDS else 0, ts(scheduled), ts(queued), ts(sent),
                    ts(delivered), ts(read), ts(finished), ts(created), ts(updated),
                )
                for name in optional:
                    if name == "enqueued_at":
                        row += (ts(queued),)
                    elif name == "claimed_at":
                        row += (ts(claimed),)
                    else:
                        row += (self.senders[channel] if provider else None,)
                rows.append(row + extra)
                if logs_from is not None and created >= logs_from:
                    for from_status, to_status, when, code, detail in timeline(
                            outcome, created, queued, claimed, sent, delivered, read, updated):
                        logs.append((f"{(bits(128) & UUID_CLEAR) | UUID_SET:032x}", tenant, message_id, "status",
                                     from_status, to_status, provider if from_status else None, code, detail,
                                     ts(when)))
            self.conn.exec_driver_sql(insert_messages, rows)
            if logs:
                self.conn.exec_driver_sql(insert_logs, logs)
            self.messages += len(rows)
            self.logs += len(logs)
            progress(len(rows))


def _stored(column: Any, value: Any, dialect: Any) -> Any:
    """The value as SQLAlchemy would send it to the database for this column."""
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor else value


def _check_formats(conn: Connection, clock: Clock) -> None:
    """Fail loudly if the hand-made stored forms ever differ from SQLAlchemy's."""
    dialect = conn.dialect
    table = Message.__table__
    sample_id = uuid.UUID(int=(0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0 & UUID_CLEAR) | UUID_SET)
    t = 86_400 + 3 * 3600 + 4 * 60 + 5
    checks = (
        (table.c.id, sample_id, f"{sample_id.int:032x}"),
        (table.c.created_at, clock.at(t), clock.sqlite(t)),
        (table.c.is_test, True, 1),
        (table.c.status, "delivered", "delivered"),
        (table.c.channel, "sms", "sms"),
    )
    for column, value, mine in checks:
        expected = _stored(column, value, dialect)
        if expected != mine:
            raise RuntimeError(f"demo seeder: {column.name} would be stored as {expected!r}, not {mine!r}")


def timeline(outcome: Outcome, created: int, queued: int | None, claimed: int | None, sent: int | None,
             delivered: int | None, read: int | None, updated: int
             ) -> list[tuple[str | None, str, int, str | None, str]]:
    """The status events of one message: (from, to, when, error code, detail). Mirrors ``pg_timelines``."""
    status = outcome.status
    events: list[tuple[str | None, str, int, str | None, str]] = [
        (None, "queued" if queued is not None else "scheduled", created, None, "")
    ]
    if claimed is not None:
        events.append(("queued", "sending", claimed, None, ""))
    if sent is not None:
        events.append(("sending", "sent", sent, None, ""))
    if delivered is not None:
        events.append(("sent", "delivered", delivered, None, ""))
    if read is not None:
        events.append(("delivered", "read", read, None, ""))
    if status in ("failed", "undelivered", "unknown", "suppressed", "cancelled"):
        source = {"cancelled": "scheduled", "suppressed": "queued", "unknown": "sending"}.get(
            status, "sent" if sent is not None else "sending")
        events.append((source, status, updated, outcome.error_code, outcome.reason))
    return events


def pg_timelines(conn: Connection, tenant_ids: list[uuid.UUID], since: dt.datetime | None) -> int:
    """Write every message's status events with one INSERT ... SELECT (mirrors ``timeline``)."""
    has_claimed = "claimed_at" in message_columns()
    claimed = "COALESCE(m.claimed_at, m.queued_at + interval '1 second')" if has_claimed else (
        "m.queued_at + interval '1 second'")
    sql = f"""
        INSERT INTO message_logs (id, tenant_id, message_id, event, from_status, to_status, provider,
                                  error_code, detail, created_at)
        SELECT gen_random_uuid(), m.tenant_id, m.id, 'status', e.from_status, e.to_status,
               CASE WHEN e.from_status IS NULL THEN NULL ELSE m.provider END, e.error_code, e.detail, e.at
        FROM messages m
        CROSS JOIN LATERAL (VALUES
            (NULL, CASE WHEN m.queued_at IS NULL THEN 'scheduled' ELSE 'queued' END, m.created_at,
             NULL, ''),
            ('queued', 'sending',
             CASE WHEN m.status NOT IN ('queued', 'scheduled', 'cancelled', 'suppressed') THEN {claimed} END,
             NULL, ''),
            ('sending', 'sent', m.sent_at, NULL, ''),
            ('sent', 'delivered', m.delivered_at, NULL, ''),
            ('delivered', 'read', m.read_at, NULL, ''),
            (CASE m.status WHEN 'cancelled' THEN 'scheduled' WHEN 'suppressed' THEN 'queued'
                           WHEN 'unknown' THEN 'sending'
                           ELSE CASE WHEN m.sent_at IS NULL THEN 'sending' ELSE 'sent' END END,
             m.status,
             CASE WHEN m.status IN ('failed', 'undelivered', 'unknown', 'suppressed', 'cancelled')
                  THEN m.updated_at END,
             m.error_code, m.status_reason)
        ) AS e(from_status, to_status, at, error_code, detail)
        WHERE m.tenant_id = ANY(:tenants) AND e.at IS NOT NULL {"AND m.created_at >= :since" if since else ""}
    """
    params: dict[str, Any] = {"tenants": tenant_ids}
    if since:
        params["since"] = since
    return conn.execute(text(sql), params).rowcount
