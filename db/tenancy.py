"""Tenant scoping that code cannot forget.

Every session is either bound to one tenant or explicitly a system session (the worker's
sweeper, migrations, the demo seeder). A tenant-bound session adds ``tenant_id = :tenant`` to
every ORM SELECT, UPDATE and DELETE of a tenant-owned model (``with_loader_criteria``, which
also reaches relationship loads and joins), stamps new rows with its tenant and refuses to
write rows of another tenant. A session that is neither refuses to run ORM statements at all.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from db.base import HasTenant
from db.models import Tenant


class TenantScopeError(RuntimeError):
    """A programming error: data access outside a tenant or across tenants."""


class TenantSession(Session):
    """A session that knows its tenant (``info['tenant_id']``) or is a system session."""

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.info.get("tenant_id")

    @property
    def is_system(self) -> bool:
        return bool(self.info.get("system"))


def _tenant_of(session: Session) -> uuid.UUID | None:
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None and not session.info.get("system"):
        raise TenantScopeError(
            "this session is bound to no tenant; use db.session.tenant_session() or, "
            "for cross-tenant maintenance, db.session.system_session()"
        )
    return tenant_id


@event.listens_for(TenantSession, "after_begin")
def _enter_database_scope(session: Session, transaction: Any, connection: Any) -> None:
    """The database's wall (PostgreSQL row-level security) follows the session's clinic."""
    from db.session import SYSTEM, enter_scope

    tenant_id = _tenant_of(session)
    enter_scope(connection, SYSTEM if tenant_id is None else tenant_id)


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_insert:
        _check_bulk_insert(state)
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    tenant_id = _tenant_of(state.session)
    if tenant_id is None:  # system session
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            HasTenant,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
            track_closure_variables=False,
        ),
        with_loader_criteria(
            Tenant,
            lambda cls: cls.id == tenant_id,
            include_aliases=True,
            track_closure_variables=False,
        ),
    )


def _check_bulk_insert(state: ORMExecuteState) -> None:
    """``session.execute(insert(Model), rows)``: every row must carry the session's tenant."""
    tenant_id = _tenant_of(state.session)
    if tenant_id is None:
        return
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, HasTenant):
        return
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    for row in rows:
        if row.get("tenant_id") != tenant_id:
            raise TenantScopeError(f"refusing to insert a {mapper.class_.__name__} of another tenant")


@event.listens_for(TenantSession, "before_flush")
def _check_writes(session: Session, flush_context: Any, instances: Any) -> None:
    tenant_id = _tenant_of(session)
    if tenant_id is None:
        return
    for obj in session.new:
        if isinstance(obj, HasTenant):
            if obj.tenant_id is None:
                obj.tenant_id = tenant_id
            elif obj.tenant_id != tenant_id:
                raise TenantScopeError(f"refusing to add a {type(obj).__name__} of another tenant")
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, HasTenant) and obj.tenant_id != tenant_id:
            raise TenantScopeError(f"refusing to change a {type(obj).__name__} of another tenant")
