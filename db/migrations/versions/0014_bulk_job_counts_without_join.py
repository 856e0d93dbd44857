"""bulk_job_counts: the update trigger counts without joining the statement's old and new rows

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

0011's update trigger joined the statement's transition tables (old rows to new rows by id). They
have no index, and the planner, which knows nothing of their size, chose a nested loop: settling a
cancelled 20,000-message job was still running after five minutes. A move is now counted without
the join: each old row takes 1 from its (job, channel, status), each new row adds 1 to its own, and
the sums of rows whose status did not change cancel out. A row of a job being deleted (its
messages' ``bulk_job_id`` set to NULL) is not counted.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "tenant_id, bulk_job_id, channel, status, shard, message_count"
KEY = "bulk_job_id, channel, status, shard"

ON_UPDATE = f"""
CREATE OR REPLACE FUNCTION bulk_job_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bulk_job_counts AS c ({COLUMNS})
    SELECT tenant_id, bulk_job_id, channel, status, (pg_backend_pid() % 8)::smallint, sum(delta)
    FROM (
        SELECT n.id, n.tenant_id, n.bulk_job_id, n.channel, n.status, 1 AS delta
        FROM new_rows n WHERE n.bulk_job_id IS NOT NULL
        UNION ALL
        SELECT o.id, o.tenant_id, o.bulk_job_id, o.channel, o.status, -1
        FROM old_rows o WHERE o.bulk_job_id IS NOT NULL
    ) AS moves
    WHERE NOT EXISTS (SELECT 1 FROM messages later WHERE later.retry_of_id = moves.id)
    GROUP BY tenant_id, bulk_job_id, channel, status
    HAVING sum(delta) <> 0 AND EXISTS (SELECT 1 FROM bulk_jobs j WHERE j.id = moves.bulk_job_id)
    ON CONFLICT ({KEY}) DO UPDATE SET message_count = c.message_count + excluded.message_count;
    RETURN NULL;
END
$$;
"""

JOINED = f"""
CREATE OR REPLACE FUNCTION bulk_job_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bulk_job_counts AS c ({COLUMNS})
    SELECT tenant_id, bulk_job_id, channel, status, (pg_backend_pid() % 8)::smallint, sum(delta)
    FROM (
        SELECT n.tenant_id, n.bulk_job_id, n.channel, n.status, 1 AS delta, n.id
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.bulk_job_id IS NOT NULL AND o.bulk_job_id = n.bulk_job_id
          AND (o.status <> n.status OR o.channel <> n.channel)
        UNION ALL
        SELECT o.tenant_id, o.bulk_job_id, o.channel, o.status, -1, o.id
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.bulk_job_id IS NOT NULL AND o.bulk_job_id = n.bulk_job_id
          AND (o.status <> n.status OR o.channel <> n.channel)
    ) AS moves
    WHERE NOT EXISTS (SELECT 1 FROM messages later WHERE later.retry_of_id = moves.id)
    GROUP BY tenant_id, bulk_job_id, channel, status
    HAVING sum(delta) <> 0
    ON CONFLICT ({KEY}) DO UPDATE SET message_count = c.message_count + excluded.message_count;
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(ON_UPDATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(JOINED)
