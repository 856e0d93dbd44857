"""``python -m app db-roles`` with ``CLINIC_APP_PASSWORD``: the app role gets that password.

(The test suite's own roles are made without a password, so this path ran nowhere else; it failed
with "could not determine data type of parameter" until the parameters were typed.)
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.roles import create_roles


def test_create_roles_sets_the_app_roles_password(pg_owner_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    app, system = f"bench_app_{suffix}", f"bench_system_{suffix}"
    password = "it's a 'quoted' password"  # a quote must not end the literal
    owner = create_engine(make_url(pg_owner_url), isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as connection:
            create_roles(connection, app, system, password)
            create_roles(connection, app, system, password)  # safe to run again
            stored, can_login, member = connection.execute(text(
                "SELECT a.rolpassword, a.rolcanlogin, pg_has_role(a.rolname, :system, 'MEMBER') "
                "FROM pg_authid a WHERE a.rolname = :app"), {"app": app, "system": system}).one()
        assert stored is not None and stored.startswith(("SCRAM-SHA-256$", "md5"))
        assert can_login and member
    finally:
        with owner.connect() as connection:
            connection.execute(text(f"DROP ROLE IF EXISTS {app}"))
            connection.execute(text(f"DROP ROLE IF EXISTS {system}"))
        owner.dispose()
