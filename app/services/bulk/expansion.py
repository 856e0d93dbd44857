"""Turning a confirmed bulk job into message rows, in the worker (``worker.jobs.expand_bulk_job``).

Streamed: the recipients are prepared ``PREPARE_CHUNK`` at a time in a resumable order (patient id,
or position in a list). Each chunk is written in one transaction (one preparation of a job at a
time; the job's row locked only for the moment before the commit, so its sends never wait for a
chunk), together with the job's cursor (``prepared_through``), and queued as soon as it commits (on a
second thread, while the next chunk is written), so the first messages leave while the rest is
prepared. A crash loses only the chunk in flight; a re-run
goes on after the cursor, and a re-run after the last chunk (``prepared_at`` set) writes nothing.
So recipients are neither lost nor duplicated.

Set-based where it can be: when the text is the same for everyone in a language (only the
clinic's name and phone as variables) and the audience is a patient query, the rows are one
``INSERT ... SELECT`` (language, opt-outs and consent decided by SQL ``CASE``s, delivery job ids
numbered per 500 by ``row_number()``). Otherwise rows are rendered in Python a chunk at a time
(``app.services.bulk.plan``) and inserted in groups.

Each chunk's delivery jobs (at most 500 messages each, named by the chunk) are enqueued after its
commit. If the worker dies before enqueueing, the sweeper finds the queued rows whose job is not
alive and enqueues them again. If the expansion job itself is lost (its worker killed, Redis
flushed), the sweeper asks for it again (``resume_lost``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, cast, func, insert, literal, or_, select, text
from sqlalchemy import String as SAString

from app.delivery.queue import BATCH_SIZE, Batch, JobQueue
from app.delivery.runtime import Runtime
from app.errors import AppError
from app.segments import count_segments
from app.services.bulk import audience as audiences
from app.services.bulk.plan import Content, plan
from app.services.message_content import recipient_variables, render_body
from db.enums import BulkJobStatus, Channel, Language, MessageClass, MessageStatus, move_bulk_job
from db.models import (
    BulkJob,
    Message,
    MessageTemplate,
    MessageTemplateVersion,
    NotificationPreference,
    Patient,
    Tenant,
)
from db.pgcopy import copy_chunks
from db.session import clinic_of, scoped_connection, system_session, tenant_session

log = logging.getLogger(__name__)

EXPAND_JOB = "worker.jobs.expand_bulk_job"
INSERT_CHUNK = 2000
ENQUEUE_GROUP = 200  # delivery jobs handed to the queue at a time
MAX_KEPT_REJECTIONS = 1000
ANALYZE_AFTER_ROWS = 10_000  # an expansion this big refreshes the planner's statistics
PREPARE_CHUNK = 20_000  # recipients written and committed (then queued) at a time
FIRST_CHUNK = BATCH_SIZE  # the first chunk is one delivery job, so the first messages leave at once


def content_of(session: Any, job: BulkJob) -> Content:
    """What the job sends: its template version's text, or its custom text."""
    body_en, body_ar, subject_en, subject_ar = job.custom_body_en, job.custom_body_ar, "", ""
    if job.template_version_id is not None:
        version = session.get(MessageTemplateVersion, job.template_version_id)
        if version is not None:
            body_en, body_ar = version.body_en, version.body_ar
            subject_en, subject_ar = version.subject_en, version.subject_ar
    return Content(channel=Channel(job.channel), message_class=MessageClass(job.message_class), body_en=body_en,
                   body_ar=body_ar, subject_en=subject_en, subject_ar=subject_ar, template_id=job.template_id,
                   template_version_id=job.template_version_id)


def job_prefix(job_id: uuid.UUID) -> str:
    return f"deliver-{job_id.hex}-"


def _segments(channel: Channel, body: str) -> int:
    return count_segments(body).segments if channel == Channel.SMS else (0 if channel == Channel.EMAIL else 1)


def _new_id(dialect: str) -> Any:
    if dialect == "postgresql":
        return func.gen_random_uuid()
    return func.lower(func.hex(func.randomblob(16)))  # SQLite stores Uuid as 32 hex digits


def _insert_select(session: Any, tenant: Tenant, job: BulkJob, content: Content, now: dt.datetime,
                   part: Part) -> None:
    """The rows of the patients in ``part`` in one ``INSERT ... SELECT`` (text identical per
    language), noted in ``part`` as written."""
    dialect = session.get_bind().dialect.name
    bodies = {lang: render_body(content.source(lang), recipient_variables(tenant, None, lang, None),
                                content.channel) for lang in (Language.EN, Language.AR) if
              lang == Language.EN or content.has_arabic}
    subjects = {lang: (content.subject_ar if lang == Language.AR and content.subject_ar else content.subject_en)
                or tenant.name for lang in bodies}
    preferred = func.coalesce(NotificationPreference.language, Patient.language, literal(tenant.default_language))
    language = case((and_(preferred == Language.AR.value, literal(content.has_arabic)), Language.AR.value),
                    else_=Language.EN.value) if content.has_arabic else literal(Language.EN.value)

    def per_language(values: dict[Language, Any]) -> Any:
        if len(values) == 1:
            return literal(values[Language.EN])
        return case((language == Language.AR.value, literal(values[Language.AR])), else_=literal(values[Language.EN]))

    opt_in = getattr(NotificationPreference, f"{content.channel.value}_opt_in")
    refused = or_(opt_in.is_(False))
    reason = case((and_(NotificationPreference.id.is_not(None), refused),
                   literal(f"The patient opted out of {content.channel.label}.")), else_=literal(""))
    if content.message_class == MessageClass.PROMOTIONAL:
        no_consent = or_(NotificationPreference.id.is_(None), NotificationPreference.promotional_consent.is_(False))
        refused = or_(refused, no_consent)
        reason = case((and_(NotificationPreference.id.is_not(None), opt_in.is_(False)),
                       literal(f"The patient opted out of {content.channel.label}.")),
                      (no_consent, literal("No recorded consent to promotional messages.")), else_=literal(""))
    waiting = MessageStatus.SCHEDULED.value if job.scheduled_at else MessageStatus.QUEUED.value
    status = case((refused, literal(MessageStatus.SUPPRESSED.value)), else_=literal(waiting))
    # The queued rows numbered in the order the scan reads them (a running count: no sort), 500 a job.
    number = (func.sum(case((refused, 0), else_=1)).over(rows=(None, 0)) - 1) // BATCH_SIZE
    job_id = None if job.scheduled_at else case(
        (refused, None), else_=literal(part.prefix) + cast(number, SAString))
    column = audiences.contact_column(content.channel)
    query = audiences.with_preferences(audiences.patients_query(job.audience, content.channel, tenant))
    query = query.where(part.window)
    columns: dict[str, Any] = {
        "id": _new_id(dialect), "tenant_id": literal(tenant.id, Message.tenant_id.type),
        "patient_id": Patient.id, "bulk_job_id": literal(job.id, Message.bulk_job_id.type),
        "template_id": literal(content.template_id, Message.template_id.type),
        "template_version_id": literal(content.template_version_id, Message.template_version_id.type),
        "created_by_id": literal(job.created_by_id, Message.created_by_id.type),
        "channel": literal(content.channel.value), "message_class": literal(content.message_class.value),
        "recipient": column, "language": language,
        "subject": per_language(subjects) if content.channel == Channel.EMAIL else literal(""),
        "body": per_language(bodies),
        "variables": literal({}, Message.variables.type), "status": status, "status_reason": reason,
        "segments": per_language({lang: _segments(content.channel, body) for lang, body in bodies.items()}),
        "is_test": literal(False), "urgent": literal(False), "attempts": literal(0),
        "scheduled_at": literal(job.scheduled_at, Message.scheduled_at.type),
        "queued_at": literal(None if job.scheduled_at else now, Message.queued_at.type),
        "enqueued_at": literal(None if job.scheduled_at else now, Message.enqueued_at.type),
        "delivery_job_id": job_id if job_id is not None else literal(None, Message.delivery_job_id.type),
        "finished_at": case((refused, literal(now, Message.finished_at.type)),
                            else_=literal(None, Message.finished_at.type)),
        "created_at": literal(now, Message.created_at.type), "updated_at": literal(now, Message.updated_at.type),
    }
    rows = insert(Message).from_select(list(columns), query.with_only_columns(*columns.values())).returning(
        Message.id, Message.status, Message.delivery_job_id)
    if dialect != "postgresql":
        for message_id, status, delivery_job in session.execute(rows):
            part.written(status, delivery_job, [str(message_id)])
        return
    # PostgreSQL hands back one row per (status, delivery job), its ids as text, not 20,000 rows.
    written = rows.cte("written")
    for status, delivery_job, ids in session.execute(
            select(written.c.status, written.c.delivery_job_id, func.array_agg(cast(written.c.id, SAString)))
            .group_by(written.c.status, written.c.delivery_job_id)):
        part.written(status, delivery_job, ids)


def _rendered_rows(session: Any, tenant: Tenant, job: BulkJob, content: Content, now: dt.datetime,
                   rejections: list[dict[str, Any]], part: Part) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``part``, rendered one recipient at a time, in groups; refused recipients go to
    ``rejections``, and each written row's status to ``part.statuses``."""
    waiting = MessageStatus.SCHEDULED if job.scheduled_at else MessageStatus.QUEUED
    rows: list[dict[str, Any]] = []
    queued = 0
    template = session.get(MessageTemplate, content.template_id) if content.template_id else None
    # A WhatsApp Content template's numbered variables are filled from the row's variables at send time.
    content_names = set((template.whatsapp_variable_map or {}).values()) if template is not None else set()
    for item in plan(session, tenant, part.audience, content, job.scheduled_at or now, where=part.window):
        body = ""
        if item.skip is not None and not item.suppressed:
            rejections.append({"row": item.row, "recipient": item.recipient, "reason": f"{item.skip}: {item.detail}"})
            continue
        try:
            body = render_body(content.source(item.language), item.values, content.channel)
        except Exception as exc:  # noqa: BLE001 - a ValidationError or TemplateRenderError names the problem
            rejections.append({"row": item.row, "recipient": item.recipient, "reason": str(exc)})
            continue
        status = MessageStatus.SUPPRESSED if item.suppressed else waiting
        delivery_job = None
        if status == MessageStatus.QUEUED:
            delivery_job = f"{part.prefix}{queued // BATCH_SIZE}"
            queued += 1
        subject = (content.subject_ar if item.language == Language.AR and content.subject_ar else content.subject_en)
        row_id = uuid.uuid4()
        part.written(status, delivery_job, [str(row_id)])
        rows.append({
            "id": row_id, "tenant_id": tenant.id, "patient_id": item.patient_id, "bulk_job_id": job.id,
            "template_id": content.template_id, "template_version_id": content.template_version_id,
            "created_by_id": job.created_by_id, "channel": content.channel, "message_class": content.message_class,
            "recipient": item.recipient, "language": item.language,
            "subject": (subject or tenant.name) if content.channel == Channel.EMAIL else "", "body": body,
            "variables": {k: str(v) for k, v in item.values.items() if k not in _STANDARD or k in content_names},
            "status": status, "status_reason": item.detail if item.suppressed else "",
            "segments": _segments(content.channel, body), "is_test": False, "urgent": False, "attempts": 0,
            "scheduled_at": job.scheduled_at, "queued_at": None if job.scheduled_at else now,
            "enqueued_at": now if delivery_job else None, "delivery_job_id": delivery_job,
            "finished_at": now if item.suppressed else None, "created_at": now, "updated_at": now,
        })
        if len(rows) >= INSERT_CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


_STANDARD = frozenset({"clinic_name", "clinic_phone", "patient_name", "patient_first_name", "appointment_date",
                       "appointment_time", "doctor_name", "department"})


def lock_job(session: Any, bulk_job_id: uuid.UUID) -> BulkJob | None:
    """The job as it is now, locked for the rest of the transaction on PostgreSQL (SQLite has one
    writer). ``FOR NO KEY UPDATE``, as an update of the row takes: it waits for the claims holding
    the job ``FOR SHARE``, not for a chunk whose new rows merely reference the job (``FOR KEY SHARE``)."""
    query = select(BulkJob).where(BulkJob.id == bulk_job_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    return session.scalar(query)


def _write_rendered(runtime: Runtime, session: Any, tenant: Tenant, job: BulkJob, content: Content,
                    now: dt.datetime, rejections: list[dict[str, Any]], part: Part) -> None:
    """Render and write the rows in the expansion's transaction (``session``).

    On PostgreSQL the audience is read on a second connection (in the same clinic) so that ONE
    COPY streams every row: the database inserts one chunk while the next is rendered.
    """
    if session.get_bind().dialect.name != "postgresql":
        for rows in _rendered_rows(session, tenant, job, content, now, rejections, part):
            session.execute(insert(Message), rows)
        return
    with tenant_session(runtime.engine, tenant.id) as reader:
        copy_chunks(session.connection(), Message.__table__,
                    _rendered_rows(reader, tenant, job, content, now, rejections, part))


@dataclass
class Part:
    """One chunk of a job's recipients: who (``audience`` and ``window``), the cursor after it, the
    prefix of its delivery jobs, and the statuses of the rows written."""

    audience: dict[str, Any]
    window: Any
    cursor: str
    prefix: str
    statuses: Counter[MessageStatus] = field(default_factory=Counter)  # rows written by status
    rejected: int = 0
    batches: dict[str, list[str]] = field(default_factory=dict)  # delivery job -> its queued message ids

    def written(self, status: Any, delivery_job: str | None, ids: list[str]) -> None:
        """Rows with one status and delivery job were written (their ids as text)."""
        status = MessageStatus(status)
        self.statuses[status] += len(ids)
        if status == MessageStatus.QUEUED and delivery_job:
            self.batches.setdefault(delivery_job, []).extend(ids)

    @property
    def rows(self) -> int:
        return self.statuses.total()


PREPARING = (BulkJobStatus.EXPANDING, BulkJobStatus.SCHEDULED, BulkJobStatus.SENDING, BulkJobStatus.PAUSED)


def _next_part(session: Any, tenant: Tenant, job: BulkJob) -> Part | None:
    """The next recipients after the job's cursor (``FIRST_CHUNK``, then ``PREPARE_CHUNK`` at a time;
    None when none is left)."""
    prefix = f"{job_prefix(job.id)}{job.prepared_chunks}-"
    size = min(FIRST_CHUNK, PREPARE_CHUNK) if job.prepared_chunks == 0 else PREPARE_CHUNK
    if job.audience.get("kind") == "list":
        start = int(job.prepared_through or 0)
        recipients = list(job.audience.get("recipients") or [])[start:start + size]
        if not recipients:
            return None
        return Part({"kind": "list", "recipients": recipients}, None, str(start + len(recipients)), prefix)
    # The window is the clinic's next `size` patients by id, read from the (tenant_id, id) index alone
    # (the audience's conditions would read each patient's row: 0.1-0.25 s a chunk at 1,000,000);
    # who of them is in the audience is decided in the chunk, which may so write fewer rows.
    after = uuid.UUID(job.prepared_through) if job.prepared_through else None
    ids = select(Patient.id).where(Patient.tenant_id == tenant.id)
    if after is not None:
        ids = ids.where(Patient.id > after)
    upper = session.scalar(ids.order_by(Patient.id).offset(size - 1).limit(1))
    if upper is None:  # fewer than `size` left: up to the last (PostgreSQL has no max(uuid))
        upper = session.scalar(ids.order_by(Patient.id.desc()).limit(1))
    if upper is None:
        return None
    window = and_(Patient.id > after, Patient.id <= upper) if after is not None else Patient.id <= upper
    return Part(job.audience, window, str(upper), prefix)


class _NoLongerPreparing(Exception):
    """The job was cancelled (or failed) while a chunk was being written: the chunk is rolled back."""


def _one_preparation_at_a_time(session: Any, bulk_job_id: uuid.UUID) -> None:
    """Until the transaction ends, no other preparation of this job runs (PostgreSQL: an advisory
    lock; SQLite has one writer). Not the job row's lock: the claim that sends the job's messages
    holds that row ``FOR SHARE`` (``app.delivery.dispatch.lock_jobs_of``), and a chunk holding it
    while its rows were written kept the job's first sends waiting for the second chunk."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('bulk-expansion'), hashtext(:job))"),
                        {"job": str(bulk_job_id)})


def write_chunk(runtime: Runtime, bulk_job_id: uuid.UUID, *, now: dt.datetime | None = None) -> Part | None:
    """Write the job's next chunk of rows and advance its cursor, in one transaction (in the job's
    clinic, one preparation of a job at a time); the chunk written, or None when nothing is left to
    prepare (the job is then marked prepared) or the job is no longer being prepared (cancelled, failed).

    The job's row is locked only once the rows are written, for the moment before the commit, so
    sends of the chunks already committed and a pause or cancel never wait for a chunk; a chunk
    whose job was cancelled meanwhile is rolled back. The first chunk with rows moves the job on (sending, or
    scheduled), so its messages go out while the rest is prepared. A crash loses only the chunk in
    flight: the cursor moves with the rows.
    """
    now = now or runtime.clock()
    clinic = clinic_of(runtime.engine, BulkJob, bulk_job_id)
    if clinic is None:
        return None
    try:
        return _write_chunk(runtime, clinic, bulk_job_id, now)
    except _NoLongerPreparing:
        return None


def _write_chunk(runtime: Runtime, clinic: uuid.UUID, bulk_job_id: uuid.UUID, now: dt.datetime) -> Part | None:
    with tenant_session(runtime.engine, clinic) as session:  # the job runs in the clinic it serves
        _one_preparation_at_a_time(session, bulk_job_id)
        job = session.get(BulkJob, bulk_job_id)
        if job is None or job.prepared_at is not None or BulkJobStatus(job.status) not in PREPARING:
            return None
        tenant = session.get(Tenant, job.tenant_id)
        assert tenant is not None
        content = content_of(session, job)
        part = _next_part(session, tenant, job)
        if part is None:
            job = _locked_preparing(session, bulk_job_id)
            job.prepared_at = now
            if BulkJobStatus(job.status) == BulkJobStatus.EXPANDING:  # nobody to send to
                move_bulk_job(job, BulkJobStatus.COMPLETED)
                job.completed_at = now
            return None
        rejections: list[dict[str, Any]] = []
        if job.audience.get("kind") != "list" and not content.per_recipient:
            _insert_select(session, tenant, job, content, now, part)
        else:
            _write_rendered(runtime, session, tenant, job, content, now, rejections, part)
        job = _locked_preparing(session, bulk_job_id)
        job.prepared_through, job.prepared_chunks = part.cursor, job.prepared_chunks + 1
        job.accepted_count = (job.accepted_count or 0) + part.rows
        job.rejected_count = (job.rejected_count or 0) + len(rejections)  # plus the file's refused rows
        if rejections:
            job.rejections = [*(job.rejections or []), *rejections][:MAX_KEPT_REJECTIONS]
        # A window may hold nobody of the audience: the job starts with its first rows written, so one
        # whose audience is empty by now is still expanding when none is left, and completed then.
        if part.rows and BulkJobStatus(job.status) == BulkJobStatus.EXPANDING:
            move_bulk_job(job, BulkJobStatus.SCHEDULED if job.scheduled_at else BulkJobStatus.SENDING)
            job.started_at = None if job.scheduled_at else now
        part.rejected = len(rejections)
        return part


def _locked_preparing(session: Any, bulk_job_id: uuid.UUID) -> BulkJob:
    """The job row as it is now, locked until the commit; raises ``_NoLongerPreparing`` (rolling the
    chunk back) when it was cancelled or failed meanwhile."""
    job = lock_job(session, bulk_job_id)
    if job is None or job.prepared_at is not None or BulkJobStatus(job.status) not in PREPARING:
        raise _NoLongerPreparing
    return job


def _fail(runtime: Runtime, bulk_job_id: uuid.UUID, reason: str) -> None:
    clinic = clinic_of(runtime.engine, BulkJob, bulk_job_id)
    if clinic is None:
        return
    with tenant_session(runtime.engine, clinic) as session:
        job = lock_job(session, bulk_job_id)
        if job is None or job.prepared_at is not None:
            return
        job.rejections = [*(job.rejections or []), {"row": None, "recipient": "", "reason": reason}]
        job.prepared_at = runtime.clock()  # what was prepared is sent; nothing more is prepared
        if BulkJobStatus(job.status) == BulkJobStatus.EXPANDING:
            move_bulk_job(job, BulkJobStatus.FAILED)
            job.completed_at = runtime.clock()


def queued_batches(connection: Connection, clinic: uuid.UUID, bulk_job_id: uuid.UUID) -> Iterator[Batch]:
    """The job's queued messages grouped by their delivery job, streamed (bounded memory)."""
    # On PostgreSQL the id's text comes as is, without a UUID object per row.
    message_id = cast(Message.id, SAString) if connection.dialect.name == "postgresql" else Message.id
    stream = connection.execution_options(yield_per=5000).execute(
        select(Message.delivery_job_id, message_id).where(
            Message.tenant_id == clinic, Message.bulk_job_id == bulk_job_id, Message.status == MessageStatus.QUEUED,
            Message.delivery_job_id.is_not(None)).order_by(Message.delivery_job_id))
    current: str | None = None
    ids: list[str] = []
    for delivery_job, text_id in stream:
        if delivery_job != current and ids:
            yield current, ids  # type: ignore[misc]
            ids = []
        current = delivery_job
        ids.append(str(text_id))
    if ids and current is not None:
        yield current, ids


def enqueue_queued(engine: Engine, clinic: uuid.UUID, bulk_job_id: uuid.UUID, queue: JobQueue) -> int:
    """Hand the queued messages of one of ``clinic``'s jobs to ``queue`` under their delivery jobs,
    streamed a group at a time (what resuming a paused job does); how many delivery jobs."""
    jobs = 0
    group: list[Batch] = []
    with scoped_connection(engine, clinic) as connection:
        for batch in queued_batches(connection, clinic, bulk_job_id):
            group.append(batch)
            if len(group) >= ENQUEUE_GROUP:
                queue.enqueue_batches(group)
                jobs += len(group)
                group = []
        if group:
            queue.enqueue_batches(group)
            jobs += len(group)
    return jobs


def _refresh_statistics(runtime: Runtime) -> None:
    """``ANALYZE messages`` after a big expansion (PostgreSQL; it samples, about a second).

    Until autovacuum gets to it the planner does not know the rows are there: pausing a job of
    100,000 just expanded then scanned all of them once per 500 ids it moved (48 ms an UPDATE,
    13 ms after ANALYZE). Not fatal if refused.
    """
    if runtime.engine.dialect.name != "postgresql":
        return
    try:
        with runtime.engine.begin() as connection:
            connection.execute(text("SELECT refresh_statistics('messages')"))  # the owner's ANALYZE
    except Exception as exc:  # noqa: BLE001 - only a slower plan until autovacuum analyzes
        log.warning("could not ANALYZE messages after a bulk expansion (%s)", type(exc).__name__)


def _enqueue_part(queue: JobQueue, bulk_job_id: uuid.UUID, part: Part) -> int:
    """Hand a committed chunk's delivery jobs to the queue; how many (0 when the queue refused: the
    rows are safe, and the sweeper enqueues them later)."""
    batches = sorted(part.batches.items())
    try:
        for start in range(0, len(batches), ENQUEUE_GROUP):
            queue.enqueue_batches(batches[start:start + ENQUEUE_GROUP])
    except Exception as exc:  # noqa: BLE001
        log.warning("bulk job %s: enqueue failed (%s); the sweeper will retry", bulk_job_id, type(exc).__name__)
        return 0
    return len(batches)


def expand(runtime: Runtime, bulk_job_id: uuid.UUID) -> dict[str, int]:
    """The worker job: prepare the job a chunk at a time, each chunk committed and then queued, so
    the first messages leave while the rest is prepared. Safe to run twice or after a crash: it goes
    on after the last committed chunk, and never writes a recipient twice.

    Text that cannot be rendered (e.g. over the channel's length limit) fails a job not yet sending
    with the reason; any other error leaves the cursor where it was, and the sweeper asks again.
    """
    totals = {"written": 0, "queued": 0, "suppressed": 0, "skipped": 0, "enqueued_jobs": 0}
    clinic = clinic_of(runtime.engine, BulkJob, bulk_job_id)
    # A committed chunk is queued on a second thread while the next one is written (the database
    # works meanwhile); chunks are queued in order, each before the one after the next is written.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-enqueue") as enqueuer:
        queued: Future[int] | None = None
        while clinic is not None:
            try:
                part = write_chunk(runtime, bulk_job_id)
            except AppError as exc:
                _fail(runtime, bulk_job_id, str(exc))
                break
            if part is None:
                break
            totals["written"] += part.rows
            totals["queued"] += part.statuses[MessageStatus.QUEUED]
            totals["suppressed"] += part.statuses[MessageStatus.SUPPRESSED]
            totals["skipped"] += part.rejected
            if queued is not None:
                totals["enqueued_jobs"] += queued.result()
            queued = enqueuer.submit(_enqueue_part, runtime.queue, bulk_job_id, part)
        if queued is not None:
            totals["enqueued_jobs"] += queued.result()
    if totals["written"] >= ANALYZE_AFTER_ROWS:
        _refresh_statistics(runtime)
    log.info("bulk job %s prepared: %d rows, %d queued, %d delivery jobs", bulk_job_id, totals["written"],
             totals["queued"], totals["enqueued_jobs"])
    return totals


def resume_lost(runtime: Runtime, now: dt.datetime) -> int:
    """Ask again for the preparation of jobs not fully prepared long after their last change.

    A running expansion changes its job row with every chunk (seconds apart), so it is not asked
    for again; were a chunk slower than the wait, the second run waits for the first (one
    preparation of a job at a time) and goes on after its cursor. A job whose expansion is merely
    waiting in the queue may be asked for twice, and the second run writes nothing. Returns how
    many were asked for.
    """
    cutoff = now - dt.timedelta(seconds=runtime.settings.sweep_expanding_after_seconds)
    with system_session(runtime.engine) as session:
        query = (select(BulkJob.id).where(BulkJob.status.in_(PREPARING), BulkJob.prepared_at.is_(None),
                                          BulkJob.updated_at < cutoff)
                 .order_by(BulkJob.updated_at).limit(100))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        lost = list(session.scalars(query))
    for job_id in lost:
        log.warning("bulk job %s: still expanding and no worker on it; asking for the expansion again", job_id)
        runtime.queue.enqueue(EXPAND_JOB, str(job_id))
    return len(lost)
