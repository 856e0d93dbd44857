"""``python -m app db-roles``: the app role's password, and its sessions noticing a vanished client.

(The test suite's own roles are made without a password, so that path ran nowhere else; it failed
with "could not determine data type of parameter" until the parameters were typed. A worker machine
lost mid-transaction held its row locks, and stalled every sweeper, for hours: found by
bench/bench_multihost.py, which cuts a worker host's network.)
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.roles import DEAD_CLIENT_SETTINGS, create_roles


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


def test_a_session_of_the_app_role_gives_up_on_a_silent_client_within_a_minute(pg_owner_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    app, system = f"bench_app_{suffix}", f"bench_system_{suffix}"
    owner = create_engine(make_url(pg_owner_url), isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as connection:
            create_roles(connection, app, system)
        as_app = create_engine(make_url(pg_owner_url).set(username=app, password=None))  # over TCP
        try:
            with as_app.connect() as connection:
                shown = {name: connection.scalar(text(f"SHOW {name}")) for name in DEAD_CLIENT_SETTINGS}
        finally:
            as_app.dispose()
        assert shown == {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10",  # seconds
                         "tcp_keepalives_count": "3", "tcp_user_timeout": "60000"}  # milliseconds
    finally:
        with owner.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {app}"))
            connection.execute(text(f"DROP ROLE IF EXISTS {app}"))
            connection.execute(text(f"DROP ROLE IF EXISTS {system}"))
        owner.dispose()
