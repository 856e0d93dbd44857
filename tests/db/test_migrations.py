"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from db.migrate import current_revision, head_revision
from db.models import Base


def test_migrations_and_models_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations drifted: {diff}"


def test_database_is_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_screen_indexes_exist(engine: Engine) -> None:
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("messages")}
    for name in (
        "ix_messages_tenant_id_created_at",
        "ix_messages_tenant_id_status_created_at",
        "ix_messages_tenant_id_channel_created_at",
        "ix_messages_provider_message_id",
        "uq_messages_tenant_id_idempotency_key",
    ):
        assert name in indexes


def test_every_constraint_is_named(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        for fk in inspector.get_foreign_keys(table.name):
            assert fk["name"], f"unnamed foreign key on {table.name}"
        for ix in inspector.get_indexes(table.name):
            assert ix["name"], f"unnamed index on {table.name}"
