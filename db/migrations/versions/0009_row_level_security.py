"""row-level security: every clinic's rows are visible only inside that clinic's transactions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

The second wall between clinics (the first is the application's tenant session, db/tenancy.py).
Each unit of work sets ``app.tenant_id`` for its transaction (db/session.py ``enter_scope``); the
policies show and accept only rows of that clinic, and nothing when no clinic is set. The policies
are FORCED, so they hold for the tables' owner too: only a superuser or a role with BYPASSRLS
(the system role, entered by ``system_session`` for cross-clinic work) sees across clinics.
SQLite has no row-level security: there the application's scope is the wall.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_CLINIC = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"

# every table that holds a clinic's rows, and the column naming the clinic
CLINIC_TABLES = {
    "tenants": "id",
    "users": "tenant_id",
    "patients": "tenant_id",
    "patient_tags": "tenant_id",
    "appointments": "tenant_id",
    "notification_preferences": "tenant_id",
    "preference_changes": "tenant_id",
    "message_templates": "tenant_id",
    "message_template_versions": "tenant_id",
    "bulk_jobs": "tenant_id",
    "messages": "tenant_id",
    "message_logs": "tenant_id",
    "audit_events": "tenant_id",
    "provider_credentials": "tenant_id",
    "data_exports": "tenant_id",
    "message_rollups": "tenant_id",
    "message_status_rollups": "tenant_id",
}


# Tables the app refreshes planner statistics of after a big write. ANALYZE is the owner's right;
# this function (run with the owner's rights) lets the app role ask for exactly these tables.
ANALYZABLE = ("messages", "message_rollups", "message_status_rollups")


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"""
        CREATE FUNCTION refresh_statistics(table_name text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
        BEGIN
            IF table_name NOT IN ({", ".join(f"'{t}'" for t in ANALYZABLE)}) THEN
                RAISE EXCEPTION 'no statistics refresh for %', table_name USING ERRCODE = 'insufficient_privilege';
            END IF;
            EXECUTE format('ANALYZE %I', table_name);
        END
        $$
    """)
    for table, column in CLINIC_TABLES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY clinic_isolation ON {table} "
                   f"USING ({column} = {CURRENT_CLINIC}) WITH CHECK ({column} = {CURRENT_CLINIC})")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP FUNCTION IF EXISTS refresh_statistics(text)")
    for table in CLINIC_TABLES:
        op.execute(f"DROP POLICY IF EXISTS clinic_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
