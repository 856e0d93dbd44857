"""Reminder results from replies received and answered by the real paths (the reply webhook's
``receive_reply``, the inbox's ``reply`` and ``mark_done``), not rows written by hand: the outcome
words, the appointment a reply names and a staff answer are what the results read. Two clinics
remind the same patient (same name, same number) of an appointment at the same time.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from app.analytics.reminders import ReminderResults
from app.analytics.store import Period
from app.services import analytics
from app.services.inbox import replying, working
from app.services.permissions import Actor
from db.enums import Role
from db.models import Conversation
from db.session import tenant_session
from db.types import utcnow
from tests.factories import make_user
from tests.services.test_receive_reply import A_NUMBER, B_NUMBER, World, world

__all__ = ["world"]


def _results(w: World, tenant: uuid.UUID, actor: Actor) -> ReminderResults:
    now = utcnow()  # the appointments are two days ahead: a period that holds them (the page's ends now)
    period = Period(now - dt.timedelta(days=1), now + dt.timedelta(days=3), "Asia/Riyadh")
    with tenant_session(w.engine, tenant) as session:
        return analytics.reminder_results(session, actor, period)


def _thread(w: World, tenant: uuid.UUID) -> uuid.UUID:
    with tenant_session(w.engine, tenant) as session:
        return session.scalars(select(Conversation.id)).one()


def test_a_confirm_counts_in_its_clinic_and_an_answered_question_has_a_reply_time(world: World) -> None:
    a, b = world.a.tenant_id, world.b.tenant_id
    analyst_a = make_user(world.engine, a, "omar", Role.ANALYST)
    desk_b = make_user(world.engine, b, "huda", Role.FRONT_DESK)
    analyst_b = make_user(world.engine, b, "rana", Role.ANALYST)

    world.reply(A_NUMBER, "نعم")  # Sara confirms clinic A's appointment
    world.reply(B_NUMBER, "Can I come at five instead?")  # and asks clinic B something

    mine = _results(world, a, analyst_a)
    assert (mine.totals.reminded, mine.totals.confirmed, mine.totals.replies) == (1, 1, 1)
    assert mine.intents["Intent"].tolist() == ["Confirm"] and mine.reply_times.empty
    theirs = _results(world, b, analyst_b)
    assert (theirs.totals.reminded, theirs.totals.confirmed, theirs.totals.still_waiting) == (1, 0, 1)

    with tenant_session(world.engine, b) as session:
        replying.reply(session, desk_b, _thread(world, b), text="Yes, 5 pm is free.", idempotency_key="answer-1")
    answered = _results(world, b, analyst_b).totals
    assert (answered.answered, answered.still_waiting) == (1, 0)
    assert answered.median_reply_minutes is not None and 0 <= answered.median_reply_minutes < 5
    assert _results(world, a, analyst_a).totals.answered == 0  # B's answer to the same number is not A's


def test_a_thread_marked_done_ends_the_wait_without_an_answer(world: World) -> None:
    b = world.b.tenant_id
    desk_b = make_user(world.engine, b, "huda", Role.FRONT_DESK)
    analyst_b = make_user(world.engine, b, "rana", Role.ANALYST)
    world.reply(B_NUMBER, "Is there parking near the clinic?")
    with tenant_session(world.engine, b) as session:
        working.mark_done(session, desk_b, _thread(world, b))
    got = _results(world, b, analyst_b)
    assert (got.totals.answered, got.totals.still_waiting) == (0, 0)
    assert got.reply_times["Done without an answer"].sum() == 1
