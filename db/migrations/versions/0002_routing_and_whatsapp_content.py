"""per-clinic routing credentials, Unifonic DLR tokens, WhatsApp approval and inbound window

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('unifonic_dlr_token_hash', sa.String(length=64), nullable=True))
    op.add_column('tenants', sa.Column('unifonic_dlr_token_created_at', db.types.UTCDateTime(timezone=True),
                                       nullable=True))
    op.create_index(op.f('ix_tenants_unifonic_dlr_token_hash'), 'tenants', ['unifonic_dlr_token_hash'],
                    unique=True)
    op.add_column('patients', sa.Column('whatsapp_last_inbound_at', db.types.UTCDateTime(timezone=True),
                                        nullable=True))
    op.add_column('message_templates', sa.Column('whatsapp_approval_status', sa.String(length=20), nullable=True))
    op.add_column('message_templates', sa.Column('whatsapp_approval_reason', sa.String(length=500),
                                                 nullable=False, server_default=''))
    op.add_column('message_templates', sa.Column('whatsapp_approval_checked_at',
                                                 db.types.UTCDateTime(timezone=True), nullable=True))
    op.create_table('provider_credentials',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('encrypted', sa.Text(), nullable=False),
    sa.Column('changed_by_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_id'], ['users.id'], name=op.f('fk_provider_credentials_changed_by_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_provider_credentials_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_credentials')),
    sa.UniqueConstraint('tenant_id', 'provider', name=op.f('uq_provider_credentials_tenant_id_provider'))
    )


def downgrade() -> None:
    op.drop_table('provider_credentials')
    with op.batch_alter_table('message_templates') as batch:
        batch.drop_column('whatsapp_approval_checked_at')
        batch.drop_column('whatsapp_approval_reason')
        batch.drop_column('whatsapp_approval_status')
    with op.batch_alter_table('patients') as batch:
        batch.drop_column('whatsapp_last_inbound_at')
    op.drop_index(op.f('ix_tenants_unifonic_dlr_token_hash'), table_name='tenants')
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('unifonic_dlr_token_created_at')
        batch.drop_column('unifonic_dlr_token_hash')
