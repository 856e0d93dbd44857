"""Properties of phone normalisation, CSV export and the message status machine."""

from __future__ import annotations

import itertools
import re
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from app.csv_safe import E164_PHONE, FORMULA_STARTS, neutralise, read_csv, to_csv
from app.delivery.lifecycle import transition
from app.phones import InvalidPhoneNumber, normalise_phone
from db.enums import FINAL_STATUSES, Channel, MessageStatus, can_transition
from db.models import Message, MessageLog
from db.session import tenant_session
from tests.factories import make_tenant

# -- phones ---------------------------------------------------------------------------------------

saudi_mobiles = st.tuples(st.sampled_from(["50", "53", "54", "55", "56", "58", "59"]),
                          st.text(alphabet="0123456789", min_size=7, max_size=7)).map("".join)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def written_forms(national: str) -> list[str]:
    """Ways staff write the same Saudi mobile (``national`` is 9 digits, 5XXXXXXXX)."""
    a, b, c = national[:2], national[2:5], national[5:]
    return [
        f"+966{national}", f"+966 {a} {b} {c}", f"00966{national}", f"0{national}", f"0{a}-{b}-{c}",
        f"(0{a}) {b} {c}", f"+966.{a}.{b}.{c}", f"  0{national}  ", f"0{national}".translate(ARABIC_INDIC),
        f"+966\u00a0{a}\u00a0{b}{c}",
    ]


@given(saudi_mobiles)
def test_every_way_of_writing_a_number_gives_the_same_e164(national: str) -> None:
    results = {normalise_phone(form, "SA") for form in written_forms(national)}
    assert results == {f"+966{national}"}


@given(st.one_of(st.text(max_size=30), saudi_mobiles.map(lambda n: "0" + n),
                 st.text(alphabet="0123456789 +-()٠١٢٣", max_size=20)))
def test_normalising_is_idempotent_or_a_clear_refusal(raw: str) -> None:
    try:
        e164 = normalise_phone(raw, "SA")
    except InvalidPhoneNumber as exc:
        assert str(exc).startswith("the number")
        return
    assert re.fullmatch(r"\+[1-9]\d{6,14}", e164)
    assert normalise_phone(e164, "SA") == e164
    assert normalise_phone(e164, "US") == e164  # E.164 does not depend on the clinic's region


# -- CSV export -----------------------------------------------------------------------------------

cells = st.one_of(
    st.text(max_size=40),
    st.sampled_from(FORMULA_STARTS).flatmap(lambda c: st.text(max_size=20).map(lambda t: c + t)),
    saudi_mobiles.map(lambda n: "+966" + n),
    st.integers(), st.none(), st.booleans(),
)
tables = st.lists(st.lists(cells, min_size=3, max_size=3), max_size=15)


@given(tables)
def test_csv_round_trips_to_the_neutralised_values(rows: list[list[object]]) -> None:
    data = to_csv(["a", "b", "c"], rows)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for spreadsheet programs
    back = read_csv(data)
    assert back[0] == ["a", "b", "c"]
    assert back[1:] == [[neutralise(c) for c in row] for row in rows]


@given(tables)
def test_no_text_cell_can_start_a_formula_except_a_bare_phone_number(rows: list[list[object]]) -> None:
    for row in read_csv(to_csv(["a", "b", "c"], rows))[1:]:
        for cell in row:
            if cell.startswith(FORMULA_STARTS):
                numeric = re.fullmatch(r"-\d+", cell) is not None  # a number written as a value
                assert E164_PHONE.match(cell) or numeric, f"{cell!r} was not neutralised"


@given(st.text(max_size=40))
def test_neutralising_keeps_the_text_readable(text: str) -> None:
    safe = neutralise(text)
    assert safe == text or (safe == "'" + text and text.startswith(FORMULA_STARTS))


# -- status machine -------------------------------------------------------------------------------

PRE_SEND = {MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING}
RANK = {**dict.fromkeys(PRE_SEND, 0), MessageStatus.UNKNOWN: 1, MessageStatus.SENT: 2, MessageStatus.DELIVERED: 3,
        **dict.fromkeys(FINAL_STATUSES, 4)}
events = st.lists(st.sampled_from(list(MessageStatus)), max_size=30)


def _apply(start: MessageStatus, sequence: list[MessageStatus]) -> list[MessageStatus]:
    path = [start]
    for status in sequence:
        if can_transition(path[-1], status):
            path.append(status)
    return path


@given(st.sampled_from([MessageStatus.SCHEDULED, MessageStatus.QUEUED]), events)
def test_any_order_of_events_only_moves_forward(start: MessageStatus, sequence: list[MessageStatus]) -> None:
    path = _apply(start, sequence)
    for before, after in itertools.pairwise(path):
        assert before not in FINAL_STATUSES, f"left the final status {before}"
        if before not in PRE_SEND:  # once the provider has it, only forward
            assert RANK[after] > RANK[before], f"{before} -> {after} went back"
    assert RANK[path[-1]] == max(RANK[s] for s in path)


def test_every_status_is_ranked_and_final_statuses_are_dead_ends() -> None:
    assert set(RANK) == set(MessageStatus)
    assert all(not can_transition(final, other) for final in FINAL_STATUSES for other in MessageStatus)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events)
def test_the_database_follows_the_same_machine_and_logs_each_step(sqlite_engine: Engine,
                                                                  sequence: list[MessageStatus]) -> None:
    tenant = _tenant(sqlite_engine)
    with tenant_session(sqlite_engine, tenant) as session:
        message = Message(channel=Channel.SMS, recipient="+966501234567", body="Hi", status=MessageStatus.QUEUED)
        session.add(message)
        session.flush()
        for status in sequence:
            transition(session, message.id, status)
        stored = session.scalar(select(Message.status).where(Message.id == message.id))
        steps = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.message_id == message.id))
    path = _apply(MessageStatus.QUEUED, sequence)
    assert (MessageStatus(stored), steps) == (path[-1], len(path) - 1)


def _tenant(engine: Engine) -> uuid.UUID:
    """A fresh clinic per example (hypothesis reuses the function-scoped database across examples)."""
    return make_tenant(engine, f"prop-{uuid.uuid4().hex[:8]}")
