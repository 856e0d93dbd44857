"""appointments from the clinic's system, reminder rules, the clinic calendar, inbound replies (issue 20)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

- ``appointments`` gains the clinic system's id (``source_id``, unique per clinic: the API and the
  upload upsert on it), the appointment type and where its status last came from.
- ``api_keys``: the clinic system's keys for the appointments API (SHA-256 hashes only).
- ``clinic_calendars``: working week, sending hours (Ramadan's own), public holidays on or off,
  closed days; ``reminder_rules`` and the reminders they plan (``appointment_reminders``, unique per
  appointment and rule, so none is sent twice).
- ``conversations`` and ``inbound_messages``: patients' replies and the front desk's inbox.
Every new table has the clinic's row-level security (0009).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_CLINIC = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
NEW_CLINIC_TABLES = ("api_keys", "clinic_calendars", "reminder_rules", "appointment_reminders", "conversations",
                     "inbound_messages")


def upgrade() -> None:
    op.create_table('clinic_calendars',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('weekend_days', sa.JSON(), nullable=False),
    sa.Column('send_start', sa.Time(), nullable=False),
    sa.Column('send_end', sa.Time(), nullable=False),
    sa.Column('ramadan_send_start', sa.Time(), nullable=False),
    sa.Column('ramadan_send_end', sa.Time(), nullable=False),
    sa.Column('public_holidays', sa.Boolean(), nullable=False),
    sa.Column('closed_dates', sa.JSON(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_clinic_calendars_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_calendars')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_clinic_calendars_tenant_id'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_api_keys_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_api_keys_revoked_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('conversations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=True),
    sa.Column('state', sa.Enum('open', 'done', name='conversationstate', native_enum=False, length=8), nullable=False),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('last_inbound_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_intent', sa.Enum('confirm', 'cancel', 'reschedule', 'stop', 'start', 'unclear', name='replyintent', native_enum=False, length=12), nullable=True),
    sa.Column('waiting_since', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('assigned_to_id', sa.Uuid(), nullable=True),
    sa.Column('done_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assigned_to_id'], ['users.id'], name=op.f('fk_conversations_assigned_to_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['done_by_id'], ['users.id'], name=op.f('fk_conversations_done_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_conversations_patient_id_patients'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_conversations_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    sa.UniqueConstraint('tenant_id', 'address', name=op.f('uq_conversations_tenant_id_address'))
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_tenant_id_state_last_inbound_at', ['tenant_id', 'state', 'last_inbound_at'], unique=False)

    op.create_table('reminder_rules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('channel', sa.Enum('sms', 'whatsapp', 'email', name='channel', native_enum=False, length=20), nullable=False),
    sa.Column('fallback_channel', sa.Enum('sms', 'whatsapp', 'email', name='channel', native_enum=False, length=20), nullable=True),
    sa.Column('template_id', sa.Uuid(), nullable=True),
    sa.Column('offset_minutes', sa.Integer(), nullable=False),
    sa.Column('shift', sa.Enum('earlier', 'later', name='remindershift', native_enum=False, length=8), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('appointment_types', sa.JSON(), nullable=False),
    sa.Column('departments', sa.JSON(), nullable=False),
    sa.Column('confirm_ack_template_id', sa.Uuid(), nullable=True),
    sa.Column('cancel_ack_template_id', sa.Uuid(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cancel_ack_template_id'], ['message_templates.id'], name=op.f('fk_reminder_rules_cancel_ack_template_id_message_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['confirm_ack_template_id'], ['message_templates.id'], name=op.f('fk_reminder_rules_confirm_ack_template_id_message_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['template_id'], ['message_templates.id'], name=op.f('fk_reminder_rules_template_id_message_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_reminder_rules_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_rules'))
    )
    op.create_table('appointment_reminders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('rule_id', sa.Uuid(), nullable=False),
    sa.Column('rule_revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'cancelled', 'skipped', name='reminderstatus', native_enum=False, length=12), nullable=False),
    sa.Column('due_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('moved_reason', sa.String(length=200), nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=False),
    sa.Column('message_id', sa.Uuid(), nullable=True),
    sa.Column('planned_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_for_starts_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_reminders_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_appointment_reminders_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rule_id'], ['reminder_rules.id'], name=op.f('fk_appointment_reminders_rule_id_reminder_rules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_appointment_reminders_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_reminders')),
    sa.UniqueConstraint('appointment_id', 'rule_id', name=op.f('uq_appointment_reminders_appointment_id_rule_id'))
    )
    with op.batch_alter_table('appointment_reminders', schema=None) as batch_op:
        batch_op.create_index('ix_appointment_reminders_tenant_id_status_due_at', ['tenant_id', 'status', 'due_at'], unique=False)

    op.create_table('inbound_messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('conversation_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=True),
    sa.Column('channel', sa.Enum('sms', 'whatsapp', 'email', name='channel', native_enum=False, length=20), nullable=False),
    sa.Column('from_address', sa.String(length=64), nullable=False),
    sa.Column('to_address', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('button_payload', sa.String(length=256), nullable=False),
    sa.Column('button_text', sa.String(length=256), nullable=False),
    sa.Column('provider_message_id', sa.String(length=64), nullable=True),
    sa.Column('received_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('intent', sa.Enum('confirm', 'cancel', 'reschedule', 'stop', 'start', 'unclear', name='replyintent', native_enum=False, length=12), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.Column('in_reply_to_id', sa.Uuid(), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    sa.Column('read_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_inbound_messages_appointment_id_appointments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_inbound_messages_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['in_reply_to_id'], ['messages.id'], name=op.f('fk_inbound_messages_in_reply_to_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_inbound_messages_patient_id_patients'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_inbound_messages_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('tenant_id', 'provider_message_id', name=op.f('uq_inbound_messages_tenant_id_provider_message_id'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_messages_conversation_id_received_at', ['conversation_id', 'received_at'], unique=False)
        batch_op.create_index('ix_inbound_messages_tenant_id_received_at', ['tenant_id', 'received_at'], unique=False)

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('appointment_type', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('status_changed_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_source', sa.String(length=16), server_default='', nullable=False))
        batch_op.create_index('ix_appointments_tenant_id_updated_at', ['tenant_id', 'updated_at'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_appointments_tenant_id_source_id'), ['tenant_id', 'source_id'])

    if op.get_bind().dialect.name == 'postgresql':
        for table in NEW_CLINIC_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY clinic_isolation ON {table} "
                       f"USING (tenant_id = {CURRENT_CLINIC}) WITH CHECK (tenant_id = {CURRENT_CLINIC})")


def downgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_appointments_tenant_id_source_id'), type_='unique')
        batch_op.drop_index('ix_appointments_tenant_id_updated_at')
        batch_op.drop_column('status_source')
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('appointment_type')
        batch_op.drop_column('source_id')

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_tenant_id_received_at')
        batch_op.drop_index('ix_inbound_messages_conversation_id_received_at')

    op.drop_table('inbound_messages')
    with op.batch_alter_table('appointment_reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_appointment_reminders_tenant_id_status_due_at')

    op.drop_table('appointment_reminders')
    op.drop_table('reminder_rules')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_tenant_id_state_last_inbound_at')

    op.drop_table('conversations')
    op.drop_table('api_keys')
    op.drop_table('clinic_calendars')
