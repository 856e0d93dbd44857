"""server-side sign-in sessions carried by an HttpOnly cookie (issue 19)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``staff_sessions``: one row per sign-in. Only SHA-256 hashes of its secrets are kept: the cookie's
value (``secret_hash``) and the one-time token the browser redeems for that cookie
(``handoff_hash``, cleared on use). A session ends at its idle or absolute expiry, when revoked
(sign-out, timeout, an admin's change), or when the account's epoch or role moved on. The table
has the clinic's row-level security like every clinic table (0009); the cookie's lookup by hash,
before the clinic is known, goes through the system entry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_CLINIC = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=True),
        sa.Column('handoff_hash', sa.String(length=64), nullable=True),
        sa.Column('handoff_expires_at', db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('role', sa.Enum('admin', 'front_desk', 'analyst', name='role', native_enum=False,
                                  create_constraint=False, length=20), nullable=False),
        sa.Column('session_epoch', sa.Integer(), nullable=False),
        sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('idle_expires_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('revoked_reason', sa.String(length=32), nullable=True),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_staff_sessions_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staff_sessions_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_staff_sessions_secret_hash')),
        sa.UniqueConstraint('handoff_hash', name=op.f('uq_staff_sessions_handoff_hash')),
    )
    op.create_index('ix_staff_sessions_tenant_id_user_id', 'staff_sessions', ['tenant_id', 'user_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE staff_sessions ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE staff_sessions FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY clinic_isolation ON staff_sessions "
                   f"USING (tenant_id = {CURRENT_CLINIC}) WITH CHECK (tenant_id = {CURRENT_CLINIC})")


def downgrade() -> None:
    op.drop_index('ix_staff_sessions_tenant_id_user_id', table_name='staff_sessions')
    op.drop_table('staff_sessions')
