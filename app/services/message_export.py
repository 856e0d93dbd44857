"""CSV exports of a message filter: streamed, safe to open in Excel, masked for analysts, audited.

Format: UTF-8 with a byte-order mark (so Excel shows Arabic correctly), comma-separated, a header
row, ``\\n`` line ends, fields quoted only when needed. Times are in the clinic's time zone.

CSV injection and the phone policy: every cell goes through ``app.csv_safe`` (its docstring has the
rule), in Python through its writer and on PostgreSQL through its SQL twin ``neutralise_sql``. Numbers
we produce (segments, price) are written as numbers and never prefixed, nor are status and channel
(our own fixed words). A masked number (``+9665******67``) is not a phone number: it is neutralised
like any other text that starts with ``+``.

Analysts without full contact access get phone numbers and e-mail addresses masked
(``+9665******67``, ``s***@example.com``), exactly as on screen.

On PostgreSQL the rows are formatted by the database and streamed with ``COPY (...) TO STDOUT``
(no row passes through Python objects), the two halves of the time span side by side on two
connections that share a snapshot; elsewhere they are streamed through ``app.csv_safe``'s
writer in batches. Both apply the same rules, and a test holds them to the same bytes. Small exports are
downloaded straight away (``export_csv``); large ones run as a background job (``request_export``
-> ``run_export``) that writes a gzip file into ``EXPORT_DIR`` for download.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import logging
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from select import select as wait_readable
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Engine,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
)

from app.config import get_settings
from app.csv_safe import CsvWriter, neutralise_sql, starts_risky_sql
from app.errors import NotFoundError, ValidationError
from app.services import audit
from app.services.contacts import mask_contact, sees_full_contacts
from app.services.explorer import MessageFilter, Query, build_query, clinic_of, compiled_sql
from app.services.permissions import Actor, Permission, authorize
from app.services.queueing import enqueue_after_commit
from db.models import DataExport, Message, MessageTemplate, Patient
from db.session import tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

log = logging.getLogger(__name__)

BOM = "\ufeff".encode()
EXPORT_JOB = "worker.jobs.export_messages"
_BATCH = 5000
_WRITE_BYTES = 1 << 20


# --- columns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportColumn:
    key: str
    header: str
    source: Callable[[], ColumnElement[Any]]
    kind: str  # text, contact, time, number, flag, id, code (our own fixed words: never neutralised)


EXPORT_COLUMNS: dict[str, ExportColumn] = {c.key: c for c in (
    ExportColumn("created_at", "Created (clinic time)", lambda: Message.created_at, "time"),
    ExportColumn("status", "Status", lambda: Message.status, "code"),
    ExportColumn("channel", "Channel", lambda: Message.channel, "code"),
    ExportColumn("recipient", "Recipient", lambda: Message.recipient, "contact"),
    ExportColumn("patient", "Patient", lambda: func.coalesce(func.nullif(Patient.name_en, ""), Patient.name_ar),
                 "text"),
    ExportColumn("template", "Template", lambda: MessageTemplate.name, "text"),
    ExportColumn("error_code", "Error code", lambda: Message.error_code, "text"),
    ExportColumn("segments", "Segments", lambda: Message.segments, "number"),
    ExportColumn("price", "Price", lambda: Message.price, "number"),
    ExportColumn("price_unit", "Currency", lambda: Message.price_unit, "text"),
    ExportColumn("provider", "Provider", lambda: Message.provider, "text"),
    ExportColumn("provider_message_id", "Provider message id", lambda: Message.provider_message_id, "text"),
    ExportColumn("sent_at", "Sent (clinic time)", lambda: Message.sent_at, "time"),
    ExportColumn("delivered_at", "Delivered (clinic time)", lambda: Message.delivered_at, "time"),
    ExportColumn("is_test", "Test message", lambda: Message.is_test, "flag"),
    ExportColumn("body", "Text", lambda: Message.body, "text"),
    ExportColumn("message_id", "Message id", lambda: Message.id, "id"),
)}
DEFAULT_COLUMNS = ("created_at", "status", "channel", "recipient", "patient", "template", "error_code",
                   "segments", "price", "price_unit")


def check_columns(columns: Sequence[str]) -> list[ExportColumn]:
    if not columns:
        raise ValidationError("Choose at least one column to export.", field="columns")
    unknown = [c for c in columns if c not in EXPORT_COLUMNS]
    if unknown:
        raise ValidationError(f"Unknown export column(s): {', '.join(unknown)}.", field="columns")
    return [EXPORT_COLUMNS[c] for c in dict.fromkeys(columns)]


def _formatter(column: ExportColumn, zone: ZoneInfo, masked: bool) -> Callable[[Any], Any]:
    """A cell as handed to the CSV writer, which neutralises text (numbers stay numbers)."""
    if column.kind == "time":
        return lambda v: v.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if v is not None else ""
    if column.kind == "number":
        return lambda v: v
    if column.kind == "flag":
        return lambda v: "yes" if v else "no"
    if column.kind in ("id", "code"):
        return lambda v: str(v)
    if column.kind == "contact" and masked:
        return lambda v: mask_contact(v) or ""
    return lambda v: str(v) if v else ""


def _masked_contact_sql(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``neutralise(mask_contact(value))`` in SQL, the mask built once per row.

    The mask keeps the first character (e-mail, long number) or is all stars (short), so the
    risky-start test reads the raw value. A masked value is never a phone cell (a masked e-mail
    holds ``@``, a masked number a star), so one that starts with a risky character is prefixed.
    """
    length, at = func.length(value), func.strpos(value, "@")
    risky = case((starts_risky_sql(value), literal("'")), else_=literal(""))
    return case(  # the common cases first: each branch is only evaluated when the ones above failed
        (value == "", null()),
        (at == 1, literal("***").concat(value)),  # nothing before the @: no first character kept
        (at > 0, risky.concat(func.left(value, 1)).concat("***").concat(func.substr(value, at))),
        (length <= 7, func.repeat("*", length)),
        else_=risky.concat(func.overlay(value, func.repeat("*", length - 7), 6)),  # the first 5 and last 2 kept
    )


def _sql_cell(column: ExportColumn, timezone: str, masked: bool) -> ColumnElement[Any]:
    """The PostgreSQL expression that formats ``column`` exactly as ``_formatter`` does."""
    value = column.source()
    if column.kind == "time":  # ISO text of the local time to the second (``EXPORT_SETTINGS`` sets DateStyle)
        return cast(func.date_trunc("second", func.timezone(timezone, value)), Text)
    if column.kind in ("number", "id", "code"):
        return cast(value, Text)
    if column.kind == "flag":
        return case((value.is_(True), "yes"), else_="no")
    if column.kind == "contact" and masked:
        return _masked_contact_sql(value)
    return neutralise_sql(cast(value, Text), empty_as_null=True)


def _statement(query: Query, flt: MessageFilter, columns: list[ExportColumn],
               cells: list[ColumnElement[Any]]) -> Any:
    order = (Message.created_at.asc(), Message.id.asc()) if flt.oldest_first else (
        Message.created_at.desc(), Message.id.desc())
    statement = select(*cells).select_from(Message).where(*query.where_all()).order_by(*order)
    keys = {c.key for c in columns}
    if "patient" in keys:
        statement = statement.outerjoin(Patient, and_(Patient.id == Message.patient_id,
                                                      Patient.tenant_id == Message.tenant_id))
    if "template" in keys:
        statement = statement.outerjoin(MessageTemplate, and_(MessageTemplate.id == Message.template_id,
                                                              MessageTemplate.tenant_id == Message.tenant_id))
    return statement


# --- writing ------------------------------------------------------------------------------------


# Settings for each COPY's transaction on PostgreSQL. No JIT (compiling a 1M-row plan costs more
# than it saves); ISO dates (the time cells' text); the random-page cost of data in memory or on SSD
# (1.1 instead of 4): a clinic's messages are read in index order, where the default cost made the
# planner scan the whole table and sort it; and no parallel workers: the two halves are read side by
# side instead, which keeps both cores formatting rows without a merge in between.
EXPORT_SETTINGS = ("jit = off", "datestyle = 'ISO, YMD'", "random_page_cost = 1.1",
                   "max_parallel_workers_per_gather = 0")


def _copy_out(dbapi: Any, sql: str, params: dict[str, Any], write: Callable[[bytes], Any]) -> int:
    """One ``COPY ... TO STDOUT`` on one connection, each row handed to ``write``; returns the rows.

    The parameters are bound client-side, as psycopg does for COPY. On an error the connection is
    left usable (its results drained).
    """
    from psycopg import ClientCursor

    return _copy_side_by_side([dbapi.pgconn], [ClientCursor(dbapi).mogrify(sql, params)], [write])


def _copy_in_two_halves(session: TenantSession, query: Query, flt: MessageFilter, statement: Any,
                        write: Callable[[bytes], Any]) -> int:
    """COPY the rows as two halves of the time range, read side by side, written in order.

    One serial COPY per half, on two connections that share one snapshot (``pg_export_snapshot``,
    as ``pg_dump --jobs`` does), so the halves are exactly the rows one COPY would have read: both
    database cores format rows and no parallel workers pass them through a merge. The first half in
    the export's order goes straight to ``write``; the second is spooled to a temporary file and
    appended. The split is at the middle of the filter's time span (two index probes), so it is
    even when messages arrive evenly; it is correct however uneven.
    """
    from psycopg import ClientCursor

    span = session.execute(select(func.min(Message.created_at), func.max(Message.created_at))
                           .where(*query.where_all())).one()
    if span[0] is None:
        return 0
    middle = span[0] + (span[1] - span[0]) / 2
    older, newer = Message.created_at <= middle, Message.created_at > middle
    halves = [statement.where(older), statement.where(newer)]
    if not flt.oldest_first:
        halves.reverse()
    engine = session.get_bind()
    dialect = session.connection().dialect
    raws = [engine.raw_connection() for _ in halves]  # type: ignore[union-attr]
    try:
        first, second = (raw.driver_connection for raw in raws)
        first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()[0]
        second.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        second.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        queries = []
        for connection, half in zip((first, second), halves, strict=True):
            # these raw connections are outside the session: they enter its clinic themselves
            connection.execute("SELECT set_config('app.tenant_id', %s, true)", (str(session.tenant_id),))
            for setting in EXPORT_SETTINGS:
                connection.execute(f"SET LOCAL {setting}")
            sql, params = compiled_sql(half, dialect)
            queries.append(ClientCursor(connection).mogrify(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params))
        with tempfile.TemporaryFile() as spool:
            rows = _copy_side_by_side([first.pgconn, second.pgconn], queries, [write, spool.write])
            spool.seek(0)
            while chunk := spool.read(_WRITE_BYTES):
                write(chunk)
        for raw in raws:
            raw.rollback()
    except BaseException:
        for raw in raws:
            raw.invalidate()  # it may be mid-COPY: closed rather than handed back to the pool
        raise
    finally:
        for raw in raws:
            raw.close()
    return rows


def _copy_side_by_side(pgconns: list[Any], queries: list[str], writes: list[Callable[[bytes], Any]]) -> int:
    """Run one ``COPY ... TO STDOUT`` on each connection and hand each one's rows to its ``write``,
    reading whichever has rows ready; returns the rows.

    Reads with libpq's own ``PQgetCopyData`` through ``psycopg.pq`` (psycopg's ``Copy`` iterator
    costs about twice the client CPU per row), non-blocking, one thread. A connection whose COPY
    fails is drained, so it stays usable; another one may be left mid-COPY.
    """
    from psycopg import errors, pq

    def failed(pgconn: Any, result: Any) -> Exception:
        message = _message(result, pgconn)
        _drain(pgconn)
        return errors.DatabaseError(message)

    for pgconn, query in zip(pgconns, queries, strict=True):
        pgconn.send_query(query.encode())  # raises psycopg.OperationalError if it cannot be sent
    for pgconn in pgconns:
        result = pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            raise failed(pgconn, result)
    reading = dict(zip(pgconns, writes, strict=True))
    try:
        for pgconn in pgconns:
            pgconn.nonblocking = 1
        while reading:
            idle = []
            for pgconn, write in list(reading.items()):
                size, row = pgconn.get_copy_data(1)
                while size > 0:
                    write(row)
                    size, row = pgconn.get_copy_data(1)
                if size == 0:  # no whole row buffered yet
                    idle.append(pgconn)
                elif size == -2:
                    raise failed(pgconn, pgconn.get_result())
                else:  # -1: this COPY is done
                    del reading[pgconn]
            if idle:
                ready, _, _ = wait_readable([pgconn.socket for pgconn in idle], [], [])
                for pgconn in idle:
                    if pgconn.socket in ready:
                        pgconn.consume_input()
    finally:
        for pgconn in pgconns:
            pgconn.nonblocking = 0
    rows = 0
    for pgconn in pgconns:
        final = pgconn.get_result()
        if final is None or final.status != pq.ExecStatus.COMMAND_OK:
            raise failed(pgconn, final)
        _drain(pgconn)
        rows += int(final.command_tuples or 0)
    return rows


def _drain(pgconn: Any) -> None:
    while pgconn.get_result() is not None:
        pass


def _message(result: Any, pgconn: Any) -> str:
    raw = (result.error_message if result is not None else b"") or pgconn.error_message
    return raw.decode(errors="replace").strip() or "the export query failed"


def write_csv(session: TenantSession, flt: MessageFilter, column_keys: Sequence[str], out: IO[bytes], *,
              masked: bool, now: dt.datetime | None = None, use_copy: bool | None = None) -> int:
    """Write the filter's messages as CSV to ``out`` (a binary file); returns the number of rows.

    No permission check: callers (``export_csv``, ``run_export``) authorise and audit.
    """
    columns = check_columns(column_keys)
    clinic = clinic_of(session)
    out.write(BOM)
    header = io.StringIO()
    CsvWriter(header, line_end="\n").writerow([c.header for c in columns])
    out.write(header.getvalue().encode())
    connection = session.connection()
    if use_copy is None:
        use_copy = connection.dialect.name == "postgresql"
    query = build_query(session, flt, now=now)
    if query.empty:
        return 0
    if use_copy:
        cells = [_sql_cell(c, clinic.timezone, masked).label(c.key) for c in columns]
        return _copy_in_two_halves(session, query, flt, _statement(query, flt, columns, cells), out.write)
    statement = _statement(query, flt, columns, [c.source().label(c.key) for c in columns])
    zone = ZoneInfo(clinic.timezone)
    formatters = [_formatter(c, zone, masked) for c in columns]
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = CsvWriter(text, line_end="\n")
    rows = 0
    try:
        for partition in session.execute(statement.execution_options(yield_per=_BATCH)).partitions():
            writer.writerows([[f(v) for f, v in zip(formatters, row, strict=True)] for row in partition])
            rows += len(partition)
    finally:
        text.detach()
    return rows


def export_csv(session: TenantSession, actor: Actor, flt: MessageFilter, column_keys: Sequence[str],
               out: IO[bytes], *, now: dt.datetime | None = None) -> int:
    """Export for download now (small filters); audited with the filter, the columns and the row count."""
    authorize(session, actor, Permission.EXPORT_DATA)
    masked = not sees_full_contacts(actor)
    rows = write_csv(session, flt, column_keys, out, masked=masked, now=now)
    audit.record(session, actor, "messages.export", object_type="messages",
                 details={"filter": flt.describe(), "columns": list(column_keys), "rows": rows, "masked": masked})
    return rows


# --- background exports -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInfo:
    id: uuid.UUID
    created_at: dt.datetime
    status: str
    row_count: int | None
    filter: dict[str, str]
    file_name: str | None
    error: str

    @property
    def ready(self) -> bool:
        return self.status == "done" and bool(self.file_name)


def _info(row: DataExport) -> ExportInfo:
    return ExportInfo(row.id, row.created_at, row.status, row.row_count, dict(row.filter or {}), row.file_name,
                      row.error)


def request_export(session: TenantSession, actor: Actor, flt: MessageFilter,
                   column_keys: Sequence[str]) -> ExportInfo:
    """Record a large export; its background job starts once the session commits (it carries ids only)."""
    check_columns(column_keys)
    authorize(session, actor, Permission.EXPORT_DATA)
    row = DataExport(requested_by_id=actor.user_id, filter=flt.to_params(), columns=list(column_keys),
                     masked=not sees_full_contacts(actor), status="queued")
    session.add(row)
    session.flush()
    audit.record(session, actor, "messages.export_requested", object_type="data_export", object_id=row.id,
                 details={"filter": flt.describe(), "columns": list(column_keys), "masked": row.masked})
    enqueue_after_commit(session, EXPORT_JOB, str(session.tenant_id), str(row.id))
    return _info(row)


def export_path(tenant_id: uuid.UUID, export_id: uuid.UUID, directory: Path | None = None) -> Path:
    return (directory or get_settings().export_dir) / str(tenant_id) / f"{export_id}.csv.gz"


def run_export(engine: Engine, tenant_id: uuid.UUID, export_id: uuid.UUID, *, directory: Path | None = None) -> int:
    """The background job: write the export's gzip file, record the row count; audited on completion."""
    with tenant_session(engine, tenant_id) as session:
        row = session.get(DataExport, export_id)
        if row is None or row.status not in ("queued", "failed"):
            return 0  # unknown, or already done by an earlier delivery of this job
        row.status = "running"
        flt, columns, masked, requested_by = (MessageFilter.from_params(row.filter), list(row.columns),
                                              row.masked, row.requested_by_id)
    path = export_path(tenant_id, export_id, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    try:
        with tenant_session(engine, tenant_id) as session, \
                io.BufferedWriter(gzip.open(partial, "wb", compresslevel=1), _WRITE_BYTES) as out:  # type: ignore[arg-type]
            rows = write_csv(session, flt, columns, out, masked=masked)  # (gzip is slow per write call)
        partial.replace(path)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        log.exception("export %s failed", export_id)
        with tenant_session(engine, tenant_id) as session:
            failed = session.get(DataExport, export_id)
            if failed is not None:
                failed.status, failed.error, failed.finished_at = "failed", str(exc)[:500], utcnow()
        raise
    with tenant_session(engine, tenant_id) as session:
        done = session.get(DataExport, export_id)
        assert done is not None
        done.status, done.row_count, done.file_name, done.finished_at = "done", rows, path.name, utcnow()
        audit.record(session, None, "messages.export", object_type="data_export", object_id=export_id,
                     details={"filter": flt.describe(), "columns": columns, "rows": rows, "masked": masked,
                              "requested_by": str(requested_by) if requested_by else None},
                     actor_name="export job")
    return rows


def list_exports(session: TenantSession, actor: Actor, *, limit: int = 20) -> list[ExportInfo]:
    """The actor's recent background exports (admins see the whole clinic's), newest first."""
    authorize(session, actor, Permission.EXPORT_DATA)
    query = select(DataExport).order_by(DataExport.created_at.desc()).limit(limit)
    if not actor.can(Permission.MANAGE_STAFF):
        query = query.where(DataExport.requested_by_id == actor.user_id)
    return [_info(row) for row in session.scalars(query)]


def export_file(session: TenantSession, actor: Actor, export_id: uuid.UUID, *,
                directory: Path | None = None) -> Path:
    """The finished gzip file of one of the actor's exports."""
    ready = {e.id: e for e in list_exports(session, actor, limit=200)}.get(export_id)
    path = export_path(session.tenant_id or actor.tenant_id, export_id, directory)
    if ready is None or not ready.ready or not path.exists():
        raise NotFoundError("That export is not ready or no longer exists.")
    audit.record(session, actor, "messages.export_download", object_type="data_export", object_id=export_id,
                 details={"file": path.name})
    return path
