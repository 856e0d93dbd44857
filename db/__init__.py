"""The data layer: SQLAlchemy 2 models, engine and sessions, tenant scoping, Alembic migrations."""
