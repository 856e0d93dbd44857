"""message explorer: background CSV exports, indexes for the error-code and template filters

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'data_exports',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('requested_by_id', sa.Uuid(), nullable=True),
        sa.Column('filter', sa.JSON(), nullable=False),
        sa.Column('columns', sa.JSON(), nullable=False),
        sa.Column('masked', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('row_count', sa.Integer(), nullable=True),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=False),
        sa.Column('finished_at', db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'],
                                name=op.f('fk_data_exports_requested_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_data_exports_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports')),
    )
    op.create_index('ix_data_exports_tenant_id_created_at', 'data_exports', ['tenant_id', 'created_at'])
    op.create_index('ix_messages_tenant_id_error_code', 'messages', ['tenant_id', 'error_code', 'created_at'],
                    postgresql_where=sa.text('error_code IS NOT NULL'),
                    sqlite_where=sa.text('error_code IS NOT NULL'))
    op.create_index('ix_messages_tenant_id_template_id', 'messages', ['tenant_id', 'template_id', 'created_at'],
                    postgresql_where=sa.text('template_id IS NOT NULL'),
                    sqlite_where=sa.text('template_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_messages_tenant_id_template_id', table_name='messages')
    op.drop_index('ix_messages_tenant_id_error_code', table_name='messages')
    op.drop_index('ix_data_exports_tenant_id_created_at', table_name='data_exports')
    op.drop_table('data_exports')
