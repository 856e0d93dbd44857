"""a clinic profile: names in English and Arabic, default language, sender names, promotional window (issue 19)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

``tenants`` gains the Arabic name (until now ``settings["name_ar"]``, moved here), the e-mail
sender name and the clinic's own promotional window. The window used to be one process-wide
setting (``PROMOTIONAL_WINDOW_START`` / ``_END``): existing clinics get the value this process is
configured with (09:00-19:00 when unset), so nothing changes on upgrade.
"""

import datetime as dt
import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

tenants = sa.table("tenants", sa.column("id", sa.Uuid()), sa.column("settings", sa.JSON()),
                   sa.column("name_ar", sa.String()), sa.column("promotional_window_start", sa.Time()),
                   sa.column("promotional_window_end", sa.Time()))


def _configured(name: str, default: str) -> dt.time:
    hours, _, minutes = (os.environ.get(name, "").strip() or default).partition(":")
    return dt.time(int(hours), int(minutes))


def _every_clinic(statement_runner) -> None:  # type: ignore[no-untyped-def]
    """Run over all clinics' rows: on PostgreSQL the policies (forced, migration 0009) would show the
    tables' owner none, so they are lifted for this transaction only."""
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute("ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY")
    statement_runner(op.get_bind())
    if postgres:
        op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_ar', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('email_sender_name', sa.String(length=100), server_default='', nullable=False))
        batch_op.add_column(sa.Column('promotional_window_start', sa.Time(), server_default='09:00:00',
                                      nullable=False))
        batch_op.add_column(sa.Column('promotional_window_end', sa.Time(), server_default='19:00:00',
                                      nullable=False))
    start = _configured("PROMOTIONAL_WINDOW_START", "09:00")
    end = _configured("PROMOTIONAL_WINDOW_END", "19:00")

    def move(connection: sa.Connection) -> None:
        for tenant_id, settings in connection.execute(sa.select(tenants.c.id, tenants.c.settings)).all():
            settings = dict(settings or {})
            name_ar = str(settings.pop("name_ar", "") or "")[:200]
            connection.execute(tenants.update().where(tenants.c.id == tenant_id).values(
                name_ar=name_ar, settings=settings, promotional_window_start=start, promotional_window_end=end))

    _every_clinic(move)


def downgrade() -> None:
    def move_back(connection: sa.Connection) -> None:
        for tenant_id, settings, name_ar in connection.execute(
                sa.select(tenants.c.id, tenants.c.settings, tenants.c.name_ar)).all():
            if name_ar:
                connection.execute(tenants.update().where(tenants.c.id == tenant_id).values(
                    settings={**(settings or {}), "name_ar": name_ar}))

    _every_clinic(move_back)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('promotional_window_end')
        batch_op.drop_column('promotional_window_start')
        batch_op.drop_column('email_sender_name')
        batch_op.drop_column('name_ar')
