"""One home for the status rules (``db/enums.py``), and every screen counting with it.

- No module but ``db/enums.py`` writes a group of statuses (two or more ``MessageStatus``
  members in a tuple, set or list literal): a second copy is how "failed" came to mean two things.
- Every status change written in code is a step of the lifecycle table.
- The SQL twin of ``outcome`` gives the same answer as the Python rule for every channel and status.
- The Dashboard's figures are what the Messages page's Outcome filter finds, and a template's
  delivery rate on the Templates list is the one Analytics shows, with two clinics whose data
  overlap, on both backends.
"""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.analytics import rollups
from app.analytics.store import Period
from app.services import analytics, explorer, templates
from app.services.explorer import MessageFilter
from db.enums import (
    ALLOWED_TRANSITIONS,
    CANCELLABLE,
    FINAL_STATUSES,
    Channel,
    MessageStatus,
    Outcome,
    Role,
    TransitionNotAllowed,
    can_transition,
    outcome,
    outcome_case,
    sources_of,
)
from db.models import Message
from db.session import tenant_session
from tests.analytics.helpers import add_message, add_template
from tests.factories import make_tenant, make_user, system_connection

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "db" / "enums.py"
S = MessageStatus
NOW = dt.datetime.now(dt.UTC)


def _sources() -> list[Path]:
    return [path for base in ("app", "pages", "worker", "db") for path in sorted((ROOT / base).rglob("*.py"))
            if path != HOME]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _status(node: ast.AST) -> MessageStatus | None:
    """``MessageStatus.X`` as the member it names."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "MessageStatus":
        return MessageStatus[node.attr] if node.attr in MessageStatus.__members__ else None
    return None


def status_groups_outside_home(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.Set | ast.List):
                members = [s for s in map(_status, node.elts) if s is not None]
                if len(members) >= 2:
                    found.append(f"{_name(path)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_status_groups_are_written_only_next_to_the_lifecycle_table() -> None:
    assert status_groups_outside_home(_sources()) == [], (
        "a group of statuses is written outside db/enums.py; name the group there and import it")


def test_the_scan_sees_a_group(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from db.enums import MessageStatus\nDONE = {MessageStatus.READ, MessageStatus.FAILED}\n")
    assert len(status_groups_outside_home([bad])) == 1


# --- every status change goes through the table -----------------------------------------------


def transitions_written(paths: list[Path]) -> list[tuple[str, MessageStatus, MessageStatus]]:
    """(where, from, to) of every status change spelled out in code: log rows (``from_status=`` /
    ``to_status=``, as keywords or dict keys), ``transition(..., to, only_from={...})`` and the bulk
    moves ``_move(session, job, from, to, ...)``."""
    pairs = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{_name(path)}:{getattr(node, 'lineno', 0)}"
            named: dict[str, ast.AST] = {}
            if isinstance(node, ast.Call):
                named = {k.arg: k.value for k in node.keywords if k.arg}
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name == "transition" and len(node.args) >= 3 and _status(node.args[2]):
                    only = named.get("only_from")
                    for source in (only.elts if isinstance(only, ast.Set | ast.Tuple | ast.List) else []):
                        if _status(source):
                            pairs.append((where, _status(source), _status(node.args[2])))
                if name == "_move" and len(node.args) >= 4 and _status(node.args[2]) and _status(node.args[3]):
                    pairs.append((where, _status(node.args[2]), _status(node.args[3])))
            elif isinstance(node, ast.Dict):
                named = {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                         if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            old, new = _status(named.get("from_status")), _status(named.get("to_status"))
            if old and new:
                pairs.append((where, old, new))
    return pairs


def test_every_transition_written_in_code_is_in_the_table() -> None:
    written = transitions_written(_sources())
    assert len(written) >= 5, "the scan found too few transitions to be looking in the right places"
    assert [w for w in written if not can_transition(w[1], w[2])] == []


def test_bulk_moves_take_their_sources_from_the_table() -> None:
    assert CANCELLABLE == sources_of(S.CANCELLED) == (S.SCHEDULED, S.QUEUED)
    assert sources_of(S.SENDING) == (S.QUEUED,)  # only a queued message is claimed
    with pytest.raises(TransitionNotAllowed):
        sources_of(S.CANCELLED, (S.SENT,))  # a message with the provider cannot be cancelled


def test_unknown_goes_back_to_the_queue_only_as_a_table_step_and_finals_are_derived() -> None:
    assert can_transition(S.UNKNOWN, S.QUEUED)
    assert FINAL_STATUSES == {s for s, moves in ALLOWED_TRANSITIONS.items() if not moves}
    assert not any(can_transition(final, other) for final in FINAL_STATUSES for other in S)


def test_the_sweeper_moves_no_status_by_hand() -> None:
    source = (ROOT / "app" / "delivery" / "sweeper.py").read_text(encoding="utf-8")
    assert "update(Message)" not in source, "status changes go through app.delivery.lifecycle.transition"


# --- one meaning on every screen --------------------------------------------------------------


def test_outcome_rule_answers() -> None:
    assert outcome(Channel.EMAIL, S.SENT) == Outcome.DELIVERED  # SMTP has no delivery receipt
    assert outcome(Channel.SMS, S.SENT) == Outcome.IN_PROGRESS  # the carrier's report is still to come
    assert outcome(Channel.SMS, S.UNKNOWN) == Outcome.IN_PROGRESS  # the provider may still deliver it
    assert outcome(Channel.WHATSAPP, S.UNDELIVERED) == Outcome.FAILED
    assert outcome(Channel.SMS, S.SUPPRESSED) == outcome(Channel.SMS, S.CANCELLED) == Outcome.NOT_SENT


def test_the_sql_twin_agrees_with_the_rule_for_every_channel_and_status(engine: Engine) -> None:
    clinic = make_tenant(engine, "clinic-a")
    for channel in Channel:
        for status in S:
            add_message(engine, clinic, created_at=NOW, status=status, channel=channel)
    with system_connection(engine) as connection:
        rows = connection.execute(select(Message.channel, Message.status,
                                         outcome_case(Message.channel, Message.status))
                                  .where(Message.tenant_id == clinic)).all()
    assert len(rows) == len(Channel) * len(S)
    assert {(Channel(c), S(s)): o for c, s, o in rows} == {
        (Channel(c), S(s)): outcome(c, s).value for c, s, _ in rows}


def _history(engine: Engine, clinic: uuid.UUID, scale: int) -> uuid.UUID:
    """Yesterday and this hour, every kind of outcome on every channel; returns the e-mail template."""
    mail = add_template(engine, clinic, "newsletter", Channel.EMAIL, "Newsletter")
    sms = add_template(engine, clinic, "reminder", Channel.SMS, "Reminder")
    day = NOW - dt.timedelta(days=1)
    for _ in range(scale):
        for status in (S.SENT, S.SENT, S.SENT, S.FAILED):  # accepted by the mail server, one bounce
            add_message(engine, clinic, created_at=day, status=status, channel=Channel.EMAIL, template_id=mail)
        for status in (S.DELIVERED, S.READ, S.FAILED, S.UNDELIVERED, S.UNDELIVERED, S.SENT, S.UNKNOWN,
                       S.CANCELLED, S.SUPPRESSED):
            add_message(engine, clinic, created_at=day, status=status, template_id=sms)
        add_message(engine, clinic, created_at=day, status=S.FAILED, is_test=True)  # never counted
    rollups.rebuild(engine)
    for _ in range(scale):  # this hour: read from the raw rows
        add_message(engine, clinic, created_at=NOW - dt.timedelta(seconds=5), status=S.SENT, channel=Channel.EMAIL,
                    template_id=mail)
        add_message(engine, clinic, created_at=NOW - dt.timedelta(seconds=5), status=S.UNDELIVERED,
                    channel=Channel.WHATSAPP)
    return mail


@pytest.fixture
def clinics(engine: Engine) -> tuple:
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    admin_a, admin_b = make_user(engine, a, "amira", Role.ADMIN), make_user(engine, b, "bilal", Role.ADMIN)
    mail_a = _history(engine, a, 1)
    mail_b = _history(engine, b, 3)  # the neighbour's numbers must never show at A
    return (admin_a, mail_a), (admin_b, mail_b)


def test_the_dashboard_counts_what_the_messages_outcome_filter_finds(engine: Engine, clinics: tuple) -> None:
    for admin, _mail in clinics:
        with tenant_session(engine, admin.tenant_id) as session:
            totals = analytics.summary(session, admin, Period.last_days(7, now=NOW)).totals
            found = {o: explorer.count_messages(session, admin, MessageFilter(outcomes=(o,))).value for o in Outcome}
        assert found[Outcome.FAILED] == totals.failed
        assert (found[Outcome.DELIVERED], found[Outcome.IN_PROGRESS], found[Outcome.NOT_SENT]) == (
            totals.delivered, totals.in_progress, totals.not_sent)
    (admin_a, _), _neighbour = clinics
    with tenant_session(engine, admin_a.tenant_id) as session:
        assert analytics.summary(session, admin_a, Period.last_days(7, now=NOW)).totals.failed == 1 + 3 + 1


def test_a_templates_delivery_rate_is_the_same_on_the_templates_list_and_in_analytics(
        engine: Engine, clinics: tuple) -> None:
    for admin, mail in clinics:
        with tenant_session(engine, admin.tenant_id) as session:
            listed = {t.id: t for t in templates.list_templates(session, admin)}[mail]
            usage = templates.template_usage(session, admin, mail)
            report = analytics.report(session, admin, Period.last_days(7, now=NOW), now=NOW)
        row = report.templates.set_index("Template").loc["Newsletter"]
        assert listed.delivery_rate is not None and listed.delivery_rate == usage.delivery_rate
        assert round(100 * listed.delivery_rate, 1) == row["Success rate (%)"] == 80.0  # 4 accepted of 5 ended
