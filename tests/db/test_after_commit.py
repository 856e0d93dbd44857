"""Work registered with ``db.session.after_commit`` runs once the unit of work commits, never on rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from db.session import after_commit, tenant_session
from tests.factories import make_tenant


def test_it_runs_after_the_commit_not_when_a_savepoint_is_released(engine: Engine) -> None:
    clinic = make_tenant(engine)
    ran: list[str] = []
    with tenant_session(engine, clinic) as session:
        after_commit(session, lambda: ran.append("first"))
        with session.begin_nested():  # a SAVEPOINT released is not the commit
            after_commit(session, lambda: ran.append("second"))
        assert ran == []
    assert ran == ["first", "second"]


def test_it_never_runs_when_the_unit_of_work_rolls_back(engine: Engine) -> None:
    clinic = make_tenant(engine)
    ran: list[str] = []
    with pytest.raises(RuntimeError), tenant_session(engine, clinic) as session:
        after_commit(session, lambda: ran.append("enqueued"))
        raise RuntimeError("refused")
    with tenant_session(engine, clinic):
        pass  # the next unit of work does not inherit it either
    assert ran == []


def test_one_failing_step_does_not_stop_the_others_and_its_error_reaches_the_caller(engine: Engine) -> None:
    clinic = make_tenant(engine)
    ran: list[str] = []

    def broken() -> None:
        raise ConnectionError("queue unreachable")

    with pytest.raises(ConnectionError), tenant_session(engine, clinic) as session:
        after_commit(session, broken)
        after_commit(session, lambda: ran.append("still runs"))
    assert ran == ["still runs"]
