"""audit events are insert-only: a PostgreSQL trigger refuses UPDATE and DELETE

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-27

SQLite has no such trigger: there the ORM guard in db/models.py refuses the change (tests empty
SQLite tables with DELETE, which a trigger would block). On PostgreSQL the tests empty tables with
TRUNCATE, which row triggers do not see; an operator who must purge old audit rows does it as the
table owner with ``ALTER TABLE audit_events DISABLE TRIGGER audit_events_insert_only`` (see
docs/operations.md).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events rows are insert-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER audit_events_insert_only
        BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER IF EXISTS audit_events_insert_only ON audit_events")
    op.execute("DROP FUNCTION IF EXISTS audit_events_refuse_change()")
