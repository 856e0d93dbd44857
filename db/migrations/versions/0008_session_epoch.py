"""users.session_epoch and users.must_change_password: sessions follow the account (issue 16)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

``session_epoch`` is bumped by a password reset, a deactivation and a role change; a signed-in
session remembers the epoch it started with and ends at its next click when they differ.
``must_change_password`` is set by an admin's reset: the next sign-in chooses a new password
before anything else. Existing rows get 0 and false (server defaults, kept so that rows written
outside the ORM get them too). SQLite adds columns with a default in place; batch mode keeps
the downgrade working there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('session_epoch')
