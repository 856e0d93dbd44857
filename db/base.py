"""Declarative base, naming convention and the mixins every table shares."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from sqlalchemy import JSON, ForeignKey, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from db.types import UTCDateTime, utcnow

# Stable names for every constraint and index, so migrations can refer to them on any backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

uuid_pk = Annotated[uuid.UUID, mapped_column(Uuid, primary_key=True, default=uuid.uuid4)]
timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime)]
short_str = Annotated[str, mapped_column(String(120))]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict: JSON, list: JSON}


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class SoftDelete:
    """Rows a user deletes are kept and hidden (``deleted_at`` set)."""

    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class HasTenant:
    """Marks a model whose rows belong to a tenant; ``db.tenancy`` scopes every query of it.

    ``tenant_id`` is required; a model may redeclare it nullable (AuditEvent does, for events
    that belong to no clinic).
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - SQLAlchemy declared_attr style
        return mapped_column(Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


class TenantScoped(HasTenant):
    """A model whose every row belongs to exactly one tenant."""
