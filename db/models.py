"""SQLAlchemy 2 typed models for every entity in DESIGN.md."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    event,
    text,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from db.base import Base, HasTenant, SoftDelete, TenantScoped, Timestamps, uuid_pk
from db.enums import (
    AppointmentStatus,
    BulkJobStatus,
    Channel,
    ConversationState,
    Language,
    MessageClass,
    MessageStatus,
    OptOutSource,
    ReminderShift,
    ReminderStatus,
    ReplyIntent,
    Role,
)
from db.types import UTCDateTime, utcnow


def _enum(enum_cls: type, length: int = 20) -> Enum:
    """Enums are stored as their string values (VARCHAR), portable across backends."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Tenant(Timestamps, Base):
    """A clinic. Everything else belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Riyadh")
    default_language: Mapped[Language] = mapped_column(_enum(Language, 8), default=Language.EN)
    default_region: Mapped[str] = mapped_column(String(2), default="SA")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sending_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict] = mapped_column(default=dict)

    # --- issue 5: the clinic's own Unifonic delivery-report token (SHA-256 hex; the token is shown once)
    unifonic_dlr_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    unifonic_dlr_token_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    # --- issue 19: the clinic profile (``name`` is the English name)
    name_ar: Mapped[str] = mapped_column(String(200), default="", server_default="")
    email_sender_name: Mapped[str] = mapped_column(String(100), default="", server_default="")  # "": the name
    # Promotional messages go out only inside this daily window, clinic time (start == end: no window)
    promotional_window_start: Mapped[dt.time] = mapped_column(Time, default=dt.time(9, 0), server_default="09:00:00")
    promotional_window_end: Mapped[dt.time] = mapped_column(Time, default=dt.time(19, 0), server_default="19:00:00")

    @property
    def promotional_window(self) -> tuple[dt.time, dt.time]:
        """(start, end) of the clinic's daily window for promotional messages, in its time zone."""
        return self.promotional_window_start, self.promotional_window_end

    def name_in(self, language: Language | str) -> str:
        """The clinic's name for a message in ``language`` (Arabic when it has one, else English)."""
        return self.name_ar if Language(language) == Language.AR and self.name_ar else self.name


class User(TenantScoped, Timestamps, SoftDelete, Base):
    """A staff member who signs in. Usernames are unique across the platform (lower-case)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username"),
        Index("ix_users_tenant_id_role", "tenant_id", "role"),
    )

    id: Mapped[uuid_pk]
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    can_view_full_contacts: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_login_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # --- issue 16: a reset, deactivation or role change bumps the epoch; a session remembers the
    # epoch it signed in with and ends at its next click when they differ
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # set by an admin's password reset: the next sign-in must choose a new password first
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)


class Patient(TenantScoped, Timestamps, SoftDelete, Base):
    __tablename__ = "patients"
    __table_args__ = (
        Index("ix_patients_tenant_id_phone_e164", "tenant_id", "phone_e164"),
        Index("ix_patients_tenant_id_email", "tenant_id", "email"),
        Index("ix_patients_tenant_id_name_en", "tenant_id", "name_en"),
        Index("ix_patients_tenant_id_mrn", "tenant_id", "mrn"),
        Index("ix_patients_tenant_id_id", "tenant_id", "id"),  # a bulk job's chunks, from the index alone
    )

    id: Mapped[uuid_pk]
    mrn: Mapped[str | None] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    name_ar: Mapped[str] = mapped_column(String(200), default="")
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[Language] = mapped_column(_enum(Language, 8), default=Language.EN)
    date_of_birth: Mapped[dt.date | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    # --- issue 5: WhatsApp's 24-hour window opens with the patient's last inbound message
    whatsapp_last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[PatientTag]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def tag_names(self) -> list[str]:
        return sorted(t.tag for t in self.tags)


class PatientTag(TenantScoped, Base):
    """One tag on one patient (e.g. diabetes, pediatrics); indexed for audience selection."""

    __tablename__ = "patient_tags"
    __table_args__ = (
        UniqueConstraint("patient_id", "tag"),
        Index("ix_patient_tags_tenant_id_tag", "tenant_id", "tag", "patient_id"),
    )

    id: Mapped[uuid_pk]
    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE")
    )
    tag: Mapped[str] = mapped_column(String(64))

    patient: Mapped[Patient] = relationship(back_populates="tags")


class Appointment(TenantScoped, Timestamps, Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_tenant_id_starts_at", "tenant_id", "starts_at"),
        Index("ix_appointments_patient_id", "patient_id"),
        UniqueConstraint("tenant_id", "source_id"),
        Index("ix_appointments_tenant_id_updated_at", "tenant_id", "updated_at"),
    )

    id: Mapped[uuid_pk]
    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE")
    )
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=20)
    doctor_name_en: Mapped[str] = mapped_column(String(200), default="")
    doctor_name_ar: Mapped[str] = mapped_column(String(200), default="")
    department: Mapped[str] = mapped_column(String(120), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[AppointmentStatus] = mapped_column(
        _enum(AppointmentStatus), default=AppointmentStatus.BOOKED
    )
    # --- issue 20: kept current from the clinic's own system (FHIR API or an upload)
    source_id: Mapped[str | None] = mapped_column(String(128))  # the clinic system's id: upserts key on it
    appointment_type: Mapped[str] = mapped_column(String(120), default="", server_default="")
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status_source: Mapped[str] = mapped_column(String(16), default="", server_default="")  # api, upload, reply, staff


class NotificationPreference(TenantScoped, Timestamps, Base):
    """A patient's per-channel opt-ins, language and quiet hours (one row per patient).

    The history of changes (who, when, source, reason) is kept in PreferenceChange.
    """

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("patient_id"),)

    id: Mapped[uuid_pk]
    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE")
    )
    sms_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    whatsapp_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    email_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    promotional_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    promotional_consent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    language: Mapped[Language | None] = mapped_column(_enum(Language, 8))
    quiet_hours_start: Mapped[dt.time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[dt.time | None] = mapped_column(Time)
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    opt_out_source: Mapped[OptOutSource | None] = mapped_column(_enum(OptOutSource))

    def allows(self, channel: Channel) -> bool:
        return bool(getattr(self, f"{Channel(channel).value}_opt_in"))


class PreferenceChange(TenantScoped, Base):
    """One change of a patient's preferences: the opt-out history shown to staff."""

    __tablename__ = "preference_changes"
    __table_args__ = (Index("ix_preference_changes_patient_id", "patient_id", "created_at"),)

    id: Mapped[uuid_pk]
    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE")
    )
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(String(40))
    new_value: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[OptOutSource] = mapped_column(_enum(OptOutSource))
    reason: Mapped[str] = mapped_column(String(500), default="")
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageTemplate(TenantScoped, Timestamps, SoftDelete, Base):
    __tablename__ = "message_templates"
    __table_args__ = (
        Index(
            "uq_message_templates_tenant_id_code_live",
            "tenant_id",
            "code",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid_pk]
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    message_class: Mapped[MessageClass] = mapped_column(
        _enum(MessageClass), default=MessageClass.SERVICE
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    fallback_channel: Mapped[Channel | None] = mapped_column(_enum(Channel))
    whatsapp_content_sid: Mapped[str | None] = mapped_column(String(64))
    whatsapp_variable_map: Mapped[dict] = mapped_column(default=dict)

    # --- issue 5: the linked Content template's WhatsApp approval, as last polled from Twilio
    whatsapp_approval_status: Mapped[str | None] = mapped_column(String(20))
    whatsapp_approval_reason: Mapped[str] = mapped_column(String(500), default="")
    whatsapp_approval_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    versions: Mapped[list[MessageTemplateVersion]] = relationship(
        back_populates="template", order_by="MessageTemplateVersion.version", lazy="raise"
    )


class MessageTemplateVersion(TenantScoped, Base):
    """An immutable snapshot: every save of a template makes one."""

    __tablename__ = "message_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[uuid_pk]
    template_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    body_en: Mapped[str] = mapped_column(Text, default="")
    body_ar: Mapped[str] = mapped_column(Text, default="")
    subject_en: Mapped[str] = mapped_column(String(300), default="")
    subject_ar: Mapped[str] = mapped_column(String(300), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    template: Mapped[MessageTemplate] = relationship(back_populates="versions")


class BulkJob(TenantScoped, Timestamps, Base):
    """A send to many recipients: its audience, content, counts and state."""

    __tablename__ = "bulk_jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_bulk_jobs_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(200), default="")
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    status: Mapped[BulkJobStatus] = mapped_column(
        _enum(BulkJobStatus), default=BulkJobStatus.DRAFT
    )
    audience: Mapped[dict] = mapped_column(default=dict)
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL")
    )
    template_version_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_template_versions.id", ondelete="SET NULL")
    )
    custom_body_en: Mapped[str] = mapped_column(Text, default="")
    custom_body_ar: Mapped[str] = mapped_column(Text, default="")
    message_class: Mapped[MessageClass] = mapped_column(
        _enum(MessageClass), default=MessageClass.SERVICE
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    accepted_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    rejections: Mapped[list] = mapped_column(default=list)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    # --- issue 18: prepared in chunks; the cursor after the last committed chunk (a patient id or a
    # list position), how many chunks (they name the chunk's delivery jobs), when the last was written
    prepared_through: Mapped[str | None] = mapped_column(String(64))
    prepared_chunks: Mapped[int] = mapped_column(Integer, default=0)
    prepared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # --- issue 19: when the job's creator was told it ended (a notice on their next page view)
    end_noticed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BulkJobCount(TenantScoped, Base):
    """How many of a bulk job's messages are in each status: the job's progress, kept by the
    database as messages are written and move (triggers of migration 0011), never by scanning the job.

    A message a retry or fallback replaced no longer counts (a later attempt is the same recipient).
    Counts are split over a few ``shard`` rows so concurrent writers rarely wait for one another;
    the job's count of a status is the sum of its shards.
    """

    __tablename__ = "bulk_job_counts"

    bulk_job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[Channel] = mapped_column(_enum(Channel), primary_key=True)
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)


class Message(TenantScoped, Timestamps, Base):
    """One message to one recipient on one channel. Its status moves forward only."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_tenant_id_created_at", "tenant_id", "created_at", "id"),
        Index("ix_messages_tenant_id_status_created_at", "tenant_id", "status", "created_at"),
        Index("ix_messages_tenant_id_channel_created_at", "tenant_id", "channel", "created_at"),
        Index("ix_messages_tenant_id_recipient", "tenant_id", "recipient", "created_at"),
        Index("ix_messages_tenant_id_patient_id", "tenant_id", "patient_id", "created_at"),
        Index("ix_messages_bulk_job_id", "bulk_job_id", "status"),
        Index("ix_messages_provider_message_id", "provider_message_id"),
        Index(
            "uq_messages_tenant_id_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
        ),
        Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_messages_status_enqueued_at", "status", "enqueued_at"),
        # the attempts a retry or fallback replaced (few): the bulk-job counters look them up
        Index("ix_messages_retry_of_id", "retry_of_id", postgresql_where=text("retry_of_id IS NOT NULL"),
              sqlite_where=text("retry_of_id IS NOT NULL")),
        CheckConstraint("segments >= 0", name="segments_not_negative"),
    )

    id: Mapped[uuid_pk]
    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="SET NULL")
    )
    bulk_job_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("bulk_jobs.id", ondelete="SET NULL")
    )
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL")
    )
    template_version_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_template_versions.id", ondelete="SET NULL")
    )
    retry_of_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    message_class: Mapped[MessageClass] = mapped_column(
        _enum(MessageClass), default=MessageClass.SERVICE
    )
    recipient: Mapped[str] = mapped_column(String(254))
    language: Mapped[Language] = mapped_column(_enum(Language, 8), default=Language.EN)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    variables: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    error_code: Mapped[str | None] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    sender: Mapped[str | None] = mapped_column(String(64))
    segments: Mapped[int] = mapped_column(Integer, default=0)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    price_unit: Mapped[str | None] = mapped_column(String(3))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivery_job_id: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MessageLog(TenantScoped, Base):
    """One lifecycle event of a message: a transition, an attempt, a callback."""

    __tablename__ = "message_logs"
    __table_args__ = (Index("ix_message_logs_message_id", "message_id", "created_at"),)

    id: Mapped[uuid_pk]
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[MessageStatus | None] = mapped_column(_enum(MessageStatus))
    to_status: Mapped[MessageStatus | None] = mapped_column(_enum(MessageStatus))
    provider: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(HasTenant, Base):
    """Who did what to which object, when. Rows are only ever inserted.

    ``tenant_id`` is empty only for events that belong to no clinic (e.g. a failed sign-in
    with an unknown username); such rows are visible to no clinic's staff.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_audit_events_tenant_id_action", "tenant_id", "action", "created_at"),
    )

    id: Mapped[uuid_pk]
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE")
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- issue 5 ---


class ProviderCredential(TenantScoped, Timestamps, Base):
    """A clinic's own credentials for one provider, Fernet-encrypted; never shown back to anyone."""

    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "provider"),)

    id: Mapped[uuid_pk]
    provider: Mapped[str] = mapped_column(String(32))
    encrypted: Mapped[str] = mapped_column(Text)
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )


TENANT_SCOPED_MODELS: tuple[type[Base], ...] = (
    User,
    Patient,
    PatientTag,
    Appointment,
    NotificationPreference,
    PreferenceChange,
    MessageTemplate,
    MessageTemplateVersion,
    BulkJob,
    BulkJobCount,
    Message,
    MessageLog,
    ProviderCredential,
)


# --- issue 6 ---


class DataExport(TenantScoped, Timestamps, Base):
    """A CSV export of a message filter, written by a background job to a gzip file for download.

    The job's arguments are ids only; what to export (the filter, the columns, masked or not) is here.
    """

    __tablename__ = "data_exports"
    __table_args__ = (Index("ix_data_exports_tenant_id_created_at", "tenant_id", "created_at"),)

    id: Mapped[uuid_pk]
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    filter: Mapped[dict] = mapped_column(default=dict)
    columns: Mapped[list] = mapped_column(default=list)
    masked: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued, running, done, failed
    row_count: Mapped[int | None] = mapped_column(Integer)
    file_name: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(String(500), default="")
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


TENANT_SCOPED_MODELS = (*TENANT_SCOPED_MODELS, DataExport)

# Explorer filters that have no other index (issue 6): error code and template, newest first.
Index("ix_messages_tenant_id_error_code", Message.tenant_id, Message.error_code, Message.created_at,
      postgresql_where=text("error_code IS NOT NULL"), sqlite_where=text("error_code IS NOT NULL"))
Index("ix_messages_tenant_id_template_id", Message.tenant_id, Message.template_id, Message.created_at,
      postgresql_where=text("template_id IS NOT NULL"), sqlite_where=text("template_id IS NOT NULL"))
# --- issue 8 ---

LATENCY_BUCKET_BOUNDS: tuple[int, ...] = (10, 30, 60, 300, 900, 3600, 21600)
"""Upper bounds (seconds) of the time-to-delivered histogram; the last bucket is everything longer."""


class RollupCounts:
    """The measures every rollup row carries for its (clinic, UTC hour, channel, status, ...)."""

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    segments: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(16, 5), default=Decimal(0))
    read: Mapped[int] = mapped_column(Integer, default=0)
    timed: Mapped[int] = mapped_column(Integer, default=0)  # delivered messages with a time to delivery
    latency_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    latency_b0: Mapped[int] = mapped_column(Integer, default=0)
    latency_b1: Mapped[int] = mapped_column(Integer, default=0)
    latency_b2: Mapped[int] = mapped_column(Integer, default=0)
    latency_b3: Mapped[int] = mapped_column(Integer, default=0)
    latency_b4: Mapped[int] = mapped_column(Integer, default=0)
    latency_b5: Mapped[int] = mapped_column(Integer, default=0)
    latency_b6: Mapped[int] = mapped_column(Integer, default=0)
    latency_b7: Mapped[int] = mapped_column(Integer, default=0)


class MessageRollup(RollupCounts, TenantScoped, Base):
    """Message counts per clinic, UTC hour of creation and kind: what the dashboards read.

    One row per (hour, channel, status, template, bulk job, error code) that has messages; test
    messages are left out. The worker recomputes the hours whose messages changed
    (``app.analytics.rollups``); ``python -m app rebuild-rollups`` recomputes them all.
    """

    __tablename__ = "message_rollups"
    __table_args__ = (Index("ix_message_rollups_tenant_id_hour", "tenant_id", "hour"),)

    template_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    bulk_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    error_code: Mapped[str | None] = mapped_column(String(32))


class MessageStatusRollup(RollupCounts, TenantScoped, Base):
    """``message_rollups`` summed over template, bulk job and error code: one row per (clinic, hour,
    channel, status). A third of the rows, so the period-wide figures (tiles, daily trend, heatmap)
    read it; it is rewritten from ``message_rollups`` in the same transaction as them."""

    __tablename__ = "message_status_rollups"
    __table_args__ = (Index("ix_message_status_rollups_tenant_id_hour", "tenant_id", "hour"),)


TENANT_SCOPED_MODELS = (*TENANT_SCOPED_MODELS, MessageRollup, MessageStatusRollup)


class RollupWatermark(Base):
    """How far the rollup refresher has read ``messages.updated_at`` (one row per rollup)."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    watermark: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# Finding the messages that changed since the refresher's last pass.
Index("ix_messages_updated_at", Message.updated_at)
# --- issue 9 ---
# Audit rows are insert-only. The ORM refuses to change or delete them (a flush of a changed or
# deleted AuditEvent, or an ORM UPDATE/DELETE statement on audit_events); on PostgreSQL a
# trigger (migration 0006) refuses it for any other client too.


class AuditRowImmutable(RuntimeError):
    """A programming error: audit events are never changed or deleted."""


def _refuse_audit_change(_mapper: object, _connection: object, target: AuditEvent) -> None:
    raise AuditRowImmutable(f"audit event {target.id} cannot be changed or deleted")


def _refuse_audit_statement(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is AuditEvent:
        raise AuditRowImmutable("audit events cannot be changed or deleted")


event.listen(AuditEvent, "before_update", _refuse_audit_change)
event.listen(AuditEvent, "before_delete", _refuse_audit_change)
event.listen(Session, "do_orm_execute", _refuse_audit_statement)


# --- issue 19: sign-in that lasts ---


class StaffSession(TenantScoped, Base):
    """One sign-in: carried by an HttpOnly cookie, so reloads, new tabs and links stay signed in.

    Only SHA-256 hashes of the secrets are stored: ``secret_hash`` of the cookie's value (set when
    the browser redeems the one-time ``handoff_hash`` token, which lives a minute and is cleared on
    use). The session ends at ``idle_expires_at`` (moved on as the user works), at ``expires_at``
    whatever happens, when ``revoked_at`` is set (sign-out, timeout, an admin's change), or when
    the account's ``session_epoch`` or role no longer match the ones it started with.
    """

    __tablename__ = "staff_sessions"
    __table_args__ = (
        UniqueConstraint("secret_hash"),
        UniqueConstraint("handoff_hash"),
        Index("ix_staff_sessions_tenant_id_user_id", "tenant_id", "user_id"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    handoff_hash: Mapped[str | None] = mapped_column(String(64))
    handoff_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(16), default="password")
    role: Mapped[Role] = mapped_column(_enum(Role))
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    idle_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


TENANT_SCOPED_MODELS = (*TENANT_SCOPED_MODELS, StaffSession)


# --- issue 20: appointments from the clinic's system, reminder rules, the calendar, replies ---


class ApiKey(TenantScoped, Base):
    """A key the clinic's own system uses to call the appointments API. Only its SHA-256 hash is kept
    (the key is shown once); ``key_prefix`` names it on screens. Revoked keys are refused at once."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))


class ClinicCalendar(TenantScoped, Timestamps, Base):
    """When a clinic's reminders may go out: its working week, daily sending hours (others in
    Ramadan), public holidays (Saudi, Umm al-Qura dates, from the ``holidays`` library) and its own
    closed days. One row per clinic; a clinic without one has the defaults."""

    __tablename__ = "clinic_calendars"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid_pk]
    weekend_days: Mapped[list] = mapped_column(default=lambda: [4, 5])  # Python weekdays: Friday, Saturday
    send_start: Mapped[dt.time] = mapped_column(Time, default=dt.time(9, 0))
    send_end: Mapped[dt.time] = mapped_column(Time, default=dt.time(21, 0))
    ramadan_send_start: Mapped[dt.time] = mapped_column(Time, default=dt.time(10, 0))
    ramadan_send_end: Mapped[dt.time] = mapped_column(Time, default=dt.time(23, 0))
    public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)
    closed_dates: Mapped[list] = mapped_column(default=list)  # ISO dates the clinic adds itself


class ReminderRule(TenantScoped, Timestamps, SoftDelete, Base):
    """"WhatsApp 48 h before with this template, SMS if it fails": one reminder for every upcoming
    appointment it covers (its types and departments; empty covers all)."""

    __tablename__ = "reminder_rules"

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    fallback_channel: Mapped[Channel | None] = mapped_column(_enum(Channel))
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL"))
    offset_minutes: Mapped[int] = mapped_column(Integer)  # before the appointment starts
    shift: Mapped[ReminderShift] = mapped_column(_enum(ReminderShift, 8), default=ReminderShift.EARLIER)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)  # goes at its exact time, whatever the calendar
    appointment_types: Mapped[list] = mapped_column(default=list)
    departments: Mapped[list] = mapped_column(default=list)
    confirm_ack_template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL"))
    cancel_ack_template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL"))
    revision: Mapped[int] = mapped_column(Integer, default=1)  # moved on by every change: unsent reminders re-plan


class AppointmentReminder(TenantScoped, Base):
    """One rule's reminder of one appointment: when it goes (after the calendar moved it) and what
    became of it. Unique per (appointment, rule): a reminder is never sent twice."""

    __tablename__ = "appointment_reminders"
    __table_args__ = (
        UniqueConstraint("appointment_id", "rule_id"),
        Index("ix_appointment_reminders_tenant_id_status_due_at", "tenant_id", "status", "due_at"),
    )

    id: Mapped[uuid_pk]
    appointment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("appointments.id", ondelete="CASCADE"))
    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("reminder_rules.id", ondelete="CASCADE"))
    rule_revision: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[ReminderStatus] = mapped_column(_enum(ReminderStatus, 12), default=ReminderStatus.PENDING)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    moved_reason: Mapped[str] = mapped_column(String(200), default="")  # "Friday (weekend)", "Eid al-Fitr", ...
    status_reason: Mapped[str] = mapped_column(String(200), default="")
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("messages.id", ondelete="SET NULL"))
    planned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # the appointment's start the sent reminder named: after a reschedule a reply to it answers nothing
    sent_for_starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Conversation(TenantScoped, Timestamps, Base):
    """A patient's thread in the front desk's inbox, one per address that writes to the clinic (a
    number no patient of the clinic has is kept too, with no patient)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "address"),
        Index("ix_conversations_tenant_id_state_last_inbound_at", "tenant_id", "state", "last_inbound_at"),
    )

    id: Mapped[uuid_pk]
    address: Mapped[str] = mapped_column(String(64))  # E.164 number the patient writes from
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="SET NULL"))
    state: Mapped[ConversationState] = mapped_column(_enum(ConversationState, 8), default=ConversationState.OPEN)
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_intent: Mapped[ReplyIntent | None] = mapped_column(_enum(ReplyIntent, 12))
    waiting_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # oldest reply nobody answered yet
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))


class InboundMessage(TenantScoped, Base):
    """A patient's reply (SMS or WhatsApp, a quick-reply button's payload too), what it was
    understood to ask and what was done about it. Unique per provider id: a repeated webhook is one reply."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider_message_id"),
        Index("ix_inbound_messages_conversation_id_received_at", "conversation_id", "received_at"),
        Index("ix_inbound_messages_tenant_id_received_at", "tenant_id", "received_at"),
    )

    id: Mapped[uuid_pk]
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("conversations.id", ondelete="CASCADE"))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="SET NULL"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    from_address: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(64), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    button_payload: Mapped[str] = mapped_column(String(256), default="")
    button_text: Mapped[str] = mapped_column(String(256), default="")
    provider_message_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    intent: Mapped[ReplyIntent] = mapped_column(_enum(ReplyIntent, 12), default=ReplyIntent.UNCLEAR)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("appointments.id", ondelete="SET NULL"))
    in_reply_to_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("messages.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(200), default="")  # what was done: "appointment confirmed", ...
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


TENANT_SCOPED_MODELS = (*TENANT_SCOPED_MODELS, ApiKey, ClinicCalendar, ReminderRule, AppointmentReminder,
                        Conversation, InboundMessage)
