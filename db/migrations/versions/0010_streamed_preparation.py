"""bulk_jobs.prepared_through / prepared_chunks / prepared_at: a bulk job is prepared in chunks (issue 18)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

The expansion writes a job's messages a chunk at a time, each chunk committed and queued with the
job's cursor (``prepared_through``: the last patient id, or list position, written) and its count
(``prepared_chunks``, which names the chunk's delivery jobs), so sending starts while the rest is
prepared and a crash resumes after the last committed chunk. ``prepared_at`` is set when the last
chunk is written. Jobs that existed before were prepared in one transaction: they get
``prepared_at`` now, except those still expanding.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('bulk_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prepared_through', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('prepared_chunks', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('prepared_at', db.types.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE bulk_jobs SET prepared_at = COALESCE(started_at, updated_at, created_at) "
               "WHERE status NOT IN ('expanding', 'draft')")


def downgrade() -> None:
    with op.batch_alter_table('bulk_jobs', schema=None) as batch_op:
        batch_op.drop_column('prepared_at')
        batch_op.drop_column('prepared_chunks')
        batch_op.drop_column('prepared_through')
