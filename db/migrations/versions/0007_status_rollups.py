"""message_status_rollups: the rollups summed to (clinic, hour, channel, status) for the dashboards

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'message_status_rollups',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('hour', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('channel', sa.Enum('sms', 'whatsapp', 'email', name='channel', native_enum=False, length=20),
                  nullable=False),
        sa.Column('status', sa.Enum('scheduled', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed',
                                    'undelivered', 'cancelled', 'suppressed', 'unknown', name='messagestatus',
                                    native_enum=False, length=20), nullable=False),
        sa.Column('messages', sa.Integer(), nullable=False),
        sa.Column('segments', sa.BigInteger(), nullable=False),
        sa.Column('cost', sa.Numeric(precision=16, scale=5), nullable=False),
        sa.Column('read', sa.Integer(), nullable=False),
        sa.Column('timed', sa.Integer(), nullable=False),
        sa.Column('latency_seconds', sa.Float(), nullable=False),
        *[sa.Column(f'latency_b{i}', sa.Integer(), nullable=False) for i in range(8)],
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_message_status_rollups_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_status_rollups')),
    )
    with op.batch_alter_table('message_status_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_message_status_rollups_tenant_id_hour', ['tenant_id', 'hour'], unique=False)
    # Filled from message_rollups, as the refresher and rebuild-rollups do.
    measures = ', '.join(['messages', 'segments', 'cost', 'read', 'timed', 'latency_seconds',
                          *[f'latency_b{i}' for i in range(8)]])
    sums = ', '.join(f'SUM({m})' for m in measures.split(', '))
    op.execute(f"INSERT INTO message_status_rollups (tenant_id, hour, channel, status, {measures}) "
               f"SELECT tenant_id, hour, channel, status, {sums} FROM message_rollups "
               f"GROUP BY tenant_id, hour, channel, status ORDER BY tenant_id, hour")


def downgrade() -> None:
    with op.batch_alter_table('message_status_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_message_status_rollups_tenant_id_hour')
    op.drop_table('message_status_rollups')
