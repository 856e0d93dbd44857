"""message rollups for the dashboards, their refresher's watermark, messages.updated_at index

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0005'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'message_rollups',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('hour', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('channel', sa.Enum('sms', 'whatsapp', 'email', name='channel', native_enum=False, length=20),
                  nullable=False),
        sa.Column('status', sa.Enum('scheduled', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed',
                                    'undelivered', 'cancelled', 'suppressed', 'unknown', name='messagestatus',
                                    native_enum=False, length=20), nullable=False),
        sa.Column('template_id', sa.Uuid(), nullable=True),
        sa.Column('bulk_job_id', sa.Uuid(), nullable=True),
        sa.Column('error_code', sa.String(length=32), nullable=True),
        sa.Column('messages', sa.Integer(), nullable=False),
        sa.Column('segments', sa.BigInteger(), nullable=False),
        sa.Column('cost', sa.Numeric(precision=16, scale=5), nullable=False),
        sa.Column('read', sa.Integer(), nullable=False),
        sa.Column('timed', sa.Integer(), nullable=False),
        sa.Column('latency_seconds', sa.Float(), nullable=False),
        *[sa.Column(f'latency_b{i}', sa.Integer(), nullable=False) for i in range(8)],
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_message_rollups_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_rollups')),
    )
    with op.batch_alter_table('message_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_message_rollups_tenant_id_hour', ['tenant_id', 'hour'], unique=False)

    op.create_table(
        'rollup_watermarks',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('watermark', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_watermarks')),
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_updated_at', ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_updated_at')
    op.drop_table('rollup_watermarks')
    with op.batch_alter_table('message_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_message_rollups_tenant_id_hour')
    op.drop_table('message_rollups')
