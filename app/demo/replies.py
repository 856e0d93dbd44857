"""Reminders and replies in the demo: what the reminder rules sent, what patients answered, the inbox.

For each clinic, planned before the message history is generated (``plan_story``) and written after
it (``write_story``), in the seeder's one transaction:

- **Reminders sent.** Every appointment of the last 30 days, and every coming one whose reminder time
  has passed, has the reminders its rules sent (``AppointmentReminder`` ``sent``), placed by the
  clinic's calendar exactly as the planner places them (``ClinicHours.place``); the messages are
  real rows of the history (``history.Fixed``) with this appointment's date and time in the text.
  A time that had passed when the appointment was booked (a same-day booking) is ``skipped``, as the
  planner skips it. What is still to come is left to the planner itself (``planner.plan``, run by
  the seeder afterwards), so the Reminders page's schedule is the planner's own.
- **Replies.** Patients answer the WhatsApp reminder (SMS in Saudi Arabia is one-way): confirm, cancel,
  ask for another time, or ask something else. What is stored is what ``replies.receive.receive_reply``
  stores: the reply on the patient's thread (its intent as ``intents.classify`` reads it, the
  appointment it answers and the reminder it answers), a clear confirm or cancel acted on (the
  appointment's status with source "reply", audited under "patient reply", the rule's acknowledgement
  sent), the rest left for the front desk. Confirmed patients come more often than the others.
- **The inbox.** Older questions were answered by the front desk (a staff message, the thread marked
  done) or marked done; the clinic's current inbox is ``content.INBOX_SCENES``: unread questions in
  English and Arabic, one assigned to the front desk, one from a number no patient has, one answered,
  one done.

Volume follows the appointments (the patients), not the message history: a big ``--messages`` run
adds nothing here. All of it fits in a share of the clinic's messages (``STORY_SHARE``): on a tiny
history fewer appointments are reminded.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, update

from app import pricing
from app.demo import history, writers
from app.demo.content import (
    INBOX_SCENES,
    MOBILE_PREFIXES,
    REPLY_BUTTONS,
    REPLY_TEXTS,
    STAFF_ANSWERS,
    InboxScene,
)
from app.services.reminders.calendar import ClinicHours
from app.services.reminders.planner import CLOSED_REASONS, PASSED
from app.services.replies.intents import classify
from app.services.replies.receive import CANCELLED, CONFIRMED, FOR_FRONT_DESK, REPLY_ACTOR
from db.enums import AppointmentStatus, ConversationState, ReminderShift, ReminderStatus, ReplyIntent
from db.models import (
    AppointmentReminder,
    AuditEvent,
    Conversation,
    InboundMessage,
    Message,
    MessageLog,
    Patient,
)
from db.pgcopy import column_defaults

PAST_DAYS = 30
STORY_SHARE = 0.3  # at most this share of a clinic's messages are the story's (reminders, acknowledgements, answers)
# What a patient does with a WhatsApp reminder that reached them (the rest do not answer).
REPLY_ODDS = (("confirm", 0.5), ("cancel", 0.05), ("reschedule", 0.04), ("unclear", 0.04))
BUTTON_SHARE = 0.4  # answers given with the template's quick-reply button
REPLY_DELAY_MINUTES = (1, 2, 3, 5, 8, 12, 20, 30, 45, 60, 90, 120, 180, 300, 480)
ANSWER_DELAY_MINUTES = (3, 5, 8, 10, 12, 15, 20, 25, 30, 45, 60, 90, 120)
ANSWERED_SHARE = 0.75  # of the older questions; the others were marked done without an answer
# Chance of a no-show by what the patient did: confirmed by reply, reminded (no confirmation), not reminded.
NO_SHOW = {"confirmed": 0.03, "reminded": 0.09, "not_reminded": 0.2}
CANCELLED_BY_CLINIC = 0.04  # of the past appointments (moved or cancelled in the clinic's system)
DESK_HOURS = (8, 22)  # when the front desk answers (clinic time)


@dataclass(frozen=True)
class Rule:
    """A demo rule as the story needs it (the row itself is made by ``rules.create_rule``)."""

    id: uuid.UUID
    name: str
    channel: str
    template: int  # index into the clinic's templates
    offset: dt.timedelta
    confirm_ack: int | None = None  # template index
    cancel_ack: int | None = None


@dataclass(frozen=True)
class Staff:
    front_desk_id: uuid.UUID
    front_desk_username: str
    front_desk_name: str
    admin_id: uuid.UUID
    admin_username: str


@dataclass
class _Sent:
    rule: Rule
    due: dt.datetime
    moved: str
    at: dt.datetime  # when the dispatch wrote its message
    ref: tuple[int, int] | None = None  # (template, index in its fixed messages) once it fits the budget


@dataclass
class _Appt:
    row: dict[str, Any]
    patient: int
    past: bool
    sendable: list[_Sent] = field(default_factory=list)  # reminders whose time passed while it was booked
    not_sent: list[tuple[Rule, dt.datetime, str, str]] = field(default_factory=list)  # (rule, due, moved, why)
    taken: bool = False  # a reply is planned for it already

    @property
    def starts(self) -> dt.datetime:
        return self.row["starts_at"]

    @property
    def booked(self) -> dt.datetime:
        return self.row["created_at"]


@dataclass
class _Reply:
    address: str
    patient: int | None
    body: str
    at: dt.datetime
    intent: ReplyIntent
    outcome: str
    button_payload: str = ""
    button_text: str = ""
    appointment: _Appt | None = None
    in_reply_to: tuple[int, int] | None = None
    read_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    answer_id: uuid.UUID | None = None
    answer_text: str = ""
    done_at: dt.datetime | None = None
    assigned_at: dt.datetime | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def for_front_desk(self) -> bool:
        return self.outcome.startswith(FOR_FRONT_DESK)


@dataclass
class Story:
    """One clinic's reminders, replies and inbox, planned (see the module docstring)."""

    tenant_id: uuid.UUID
    phone: str  # the clinic's WhatsApp number: where replies are addressed
    appointments: list[_Appt]
    replies: list[_Reply]
    audit: list[dict[str, Any]]
    staff: Staff
    direct_messages: int = 0  # the front desk's answers (written here, not by the history generator)


# -- planning --------------------------------------------------------------------------------------


def plan_story(plan: history.ClinicPlan, rows: list[dict[str, Any]], owners: list[int], rules: list[Rule],
               staff: Staff, clock: history.Clock, rng: random.Random) -> Story:
    """Decide the clinic's reminders, replies and inbox: add the fixed messages to ``plan``'s templates,
    set the appointments' final statuses in ``rows`` (``owners``: each one's patient) and take the front
    desk's answers out of ``plan.messages`` (``write_story`` writes them)."""
    return _Planner(plan, clock, rng, staff).run(rows, owners, rules)


class _Planner:
    def __init__(self, plan: history.ClinicPlan, clock: history.Clock, rng: random.Random, staff: Staff) -> None:
        self.plan, self.clock, self.rng, self.now = plan, clock, rng, clock.now
        self.pat = plan.patients
        self.story = Story(plan.tenant_id, plan.phone, [], [], [], staff)
        self.budget = int(plan.messages * STORY_SHARE)  # fixed messages and answers still allowed
        self.used: set[int] = set()  # patients with a thread in the current inbox
        self.cancel_shown = False  # a past appointment cancelled by reply (every clinic shows one)

    def run(self, rows: list[dict[str, Any]], owners: list[int], rules: list[Rule]) -> Story:
        hours = ClinicHours(timezone="Asia/Riyadh", region="SA")
        appts = [_Appt(row, owners[i], row["starts_at"] <= self.now) for i, row in enumerate(rows)]
        self.story.appointments = appts
        for appt in appts:
            if appt.past and self.rng.random() < CANCELLED_BY_CLINIC:
                when = appt.booked + (appt.starts - appt.booked) * self.rng.uniform(0.2, 0.8)
                _set_status(appt, AppointmentStatus.CANCELLED, "api", when)
            elif appt.row["status"] != AppointmentStatus.CANCELLED:  # else cancelled before any reminder
                self._reminder_times(appt, rules, hours)
        for scene in INBOX_SCENES:
            self._scene(scene, appts)
        for template in self.plan.templates:  # no random message to them: their threads show the story alone
            template.pool = [p for p in template.pool if p not in self.used] or template.pool
        order = list(appts)
        self.rng.shuffle(order)
        for appt in order:
            if not appt.taken and appt.sendable:
                self._remind(appt)
        for appt in appts:
            self._final_status(appt)
        self.story.direct_messages = sum(1 for r in self.story.replies if r.answer_id is not None)
        self.plan.messages -= self.story.direct_messages
        return self.story

    # -- times ----------------------------------------------------------------------------------------

    def seconds(self, at: dt.datetime) -> int:
        return self.clock.seconds(at)

    def local(self, at: dt.datetime) -> dt.datetime:
        return at + dt.timedelta(seconds=self.plan.calendar.offset_s)

    def utc(self, local: dt.datetime) -> dt.datetime:
        return local - dt.timedelta(seconds=self.plan.calendar.offset_s)

    def _reminder_times(self, appt: _Appt, rules: list[Rule], hours: ClinicHours) -> None:
        """Where each rule's reminder went (as the planner places it), for those whose time has passed."""
        for rule in rules:
            wanted = appt.starts - rule.offset
            placement = hours.place(wanted, ReminderShift.EARLIER, not_after=appt.starts)
            if placement.at_utc is None:
                if appt.past:
                    appt.not_sent.append((rule, wanted, placement.moved_reason, placement.refused))
                continue
            due = placement.at_utc
            if due >= self.now:
                continue  # still to come: the planner plans it
            if appt.booked > due:
                if appt.past:
                    appt.not_sent.append((rule, due, placement.moved_reason, PASSED))
                continue
            at = due + dt.timedelta(seconds=self.rng.randrange(2, 55))  # the dispatch runs every minute
            if at < self.now:
                appt.sendable.append(_Sent(rule, due, placement.moved_reason, at))
        appt.sendable.sort(key=lambda s: s.at)

    def reply_time(self, appt: _Appt, sent: _Sent) -> dt.datetime | None:
        """When the patient answers the WhatsApp reminder: minutes to hours later, before the next reminder
        (so the reply answers this one), before the appointment and before now."""
        at = sent.at + dt.timedelta(minutes=self.rng.choice(REPLY_DELAY_MINUTES), seconds=self.rng.randrange(60))
        later = [s.at for s in appt.sendable if s.at > sent.at]
        if later:
            at = min(at, min(later) - dt.timedelta(seconds=self.rng.randrange(60, 600)))
        if at <= sent.at + dt.timedelta(seconds=60) or at >= appt.starts - dt.timedelta(minutes=15) or at >= self.now:
            return None
        return at

    def desk_time(self, at: dt.datetime) -> dt.datetime:
        """When the front desk gets to something that came at ``at``: minutes later in desk hours, else the
        next morning."""
        then = at + dt.timedelta(minutes=self.rng.choice(ANSWER_DELAY_MINUTES), seconds=self.rng.randrange(60))
        local = self.local(then)
        if not DESK_HOURS[0] <= local.hour < DESK_HOURS[1]:
            morning = local.replace(hour=DESK_HOURS[0], minute=self.rng.randrange(5, 40))
            then = self.utc(morning + dt.timedelta(days=1) if local.hour >= DESK_HOURS[1] else morning)
        return then

    # -- messages -------------------------------------------------------------------------------------

    def take(self, n: int) -> bool:
        if n > self.budget:
            return False
        self.budget -= n
        return True

    def fixed(self, template: int, appt: _Appt, at: dt.datetime) -> tuple[int, int]:
        """A fixed message of ``template`` to the appointment's patient at ``at`` about it: its reference."""
        local = self.local(appt.starts)
        fixed = self.plan.templates[template].fixed
        fixed.append(history.Fixed(appt.patient, self.seconds(at), local.date().isoformat(), f"{local:%H:%M}"))
        return template, len(fixed) - 1

    def answered(self, ref: tuple[int, int], at: dt.datetime) -> None:
        """The patient answered that message at ``at``: it reached them before."""
        fixed = self.plan.templates[ref[0]].fixed
        before = fixed[ref[1]]
        fixed[ref[1]] = history.Fixed(before.patient, before.created, before.date, before.time, self.seconds(at))

    def send(self, appt: _Appt, until: dt.datetime | None = None) -> None:
        """The appointment's reminders as sent (those before ``until``: a cancellation stops the rest)."""
        for sent in list(appt.sendable):
            if until is not None and sent.at > until:
                appt.sendable.remove(sent)
                appt.not_sent.append((sent.rule, sent.due, sent.moved, CANCELLED_REMINDER))
            else:
                sent.ref = self.fixed(sent.rule.template, appt, sent.at)

    def reachable(self, patient: int, at: dt.datetime) -> bool:
        """The patient had not opted out of WhatsApp by ``at``."""
        cut = self.pat.opted_out["whatsapp"].get(patient)
        return cut is None or cut > self.seconds(at)

    # -- replies --------------------------------------------------------------------------------------

    def _remind(self, appt: _Appt) -> None:
        """A past or coming appointment's reminders, and the patient's answer to the WhatsApp one, if any."""
        if not self.take(len(appt.sendable) + 2):  # room for its reminders, an acknowledgement, an answer
            appt.sendable = []  # a tiny history: this one was not reminded
            return
        self.budget += 2
        sent = _whatsapp(appt)
        if (sent is None or appt.patient in self.used or appt.row["status"] != AppointmentStatus.BOOKED
                or not self.reachable(appt.patient, sent.at)):
            self.send(appt)
            return
        what = self.pick_reply()
        if appt.past and not self.cancel_shown:
            what = "cancel"
        at = self.reply_time(appt, sent) if what is not None else None
        if at is None:
            self.send(appt)
            return
        self.cancel_shown = self.cancel_shown or (appt.past and what == "cancel")
        language = self.pat.language[appt.patient]
        body, payload, button_text = self.reply_text(str(what), language)
        intent = classify(body, payload)
        self.send(appt, until=at if intent == ReplyIntent.CANCEL else None)
        about = _latest_before(appt, at)
        assert about is not None and about.ref is not None
        self.answered(about.ref, at)
        reply = _Reply(self.pat.phone[appt.patient], appt.patient, body, at, intent, "", payload, button_text,
                       appt, about.ref)
        appt.taken = True
        if intent in (ReplyIntent.CONFIRM, ReplyIntent.CANCEL):
            self.act(reply, about)
        else:
            reply.outcome = _front_desk_outcome(intent, awaiting=True)
            self.handle_later(reply)
        self.story.replies.append(reply)

    def pick_reply(self) -> str | None:
        r = self.rng.random()
        for intent, odds in REPLY_ODDS:
            if r < odds:
                return intent
            r -= odds
        return None

    def reply_text(self, intent: str, language: str) -> tuple[str, str, str]:
        """(body, button payload, button text) of a patient's answer."""
        button = REPLY_BUTTONS.get(intent)
        if button is not None and self.rng.random() < BUTTON_SHARE:
            payload, text_en, text_ar = button
            text = text_ar if language == "ar" else text_en
            return text, payload, text
        return self.rng.choice(REPLY_TEXTS[intent][language]), "", ""

    def act(self, reply: _Reply, about: _Sent) -> None:
        """A clear confirm or cancel of the one appointment awaiting it: its status, the audit event, the
        rule's acknowledgement (``receive._answer``)."""
        appt = reply.appointment
        assert appt is not None
        confirm = reply.intent == ReplyIntent.CONFIRM
        status = AppointmentStatus.CONFIRMED if confirm else AppointmentStatus.CANCELLED
        _set_status(appt, status, "reply", reply.at)
        self.audit(None, REPLY_ACTOR, "appointment.status", "appointment", appt.row["id"],
                   {"from": AppointmentStatus.BOOKED.value, "to": status.value, "source": "reply"}, reply.at)
        reply.outcome = CONFIRMED if confirm else CANCELLED
        reply.read_at = reply.at
        ack = about.rule.confirm_ack if confirm else about.rule.cancel_ack
        if ack is None:
            reply.outcome += (f"; no acknowledgement: the reminder rule '{about.rule.name}' has no acknowledgement "
                              "for this")
        elif self.take(1):
            self.fixed(ack, appt, reply.at + dt.timedelta(seconds=self.rng.randrange(1, 4)))
        else:
            reply.outcome += "; no acknowledgement: the demo's history had no room for it"

    def handle_later(self, reply: _Reply) -> None:
        """An older question: answered by the front desk (then marked done) or marked done without an
        answer; one that came too recently to have been seen stays unread."""
        if self.rng.random() < ANSWERED_SHARE and self.budget > 0:
            at = self.desk_time(reply.at)
            if at < self.now - dt.timedelta(minutes=1):
                language = self.pat.language[reply.patient] if reply.patient is not None else "en"
                self.answer(reply, at, self.rng.choice(STAFF_ANSWERS[language]))
                done = at + dt.timedelta(minutes=self.rng.randrange(2, 30))
                if done < self.now:
                    self.done(reply, done, waited=None)
                return
        done = self.desk_time(reply.at) + dt.timedelta(minutes=self.rng.randrange(0, 120))
        if self.local(done).hour >= DESK_HOURS[1]:
            done = self.desk_time(done)
        if done < self.now:
            reply.read_at = max(reply.at, done - dt.timedelta(seconds=self.rng.randrange(30, 300)))
            self.done(reply, done, waited=reply.at)

    def answer(self, reply: _Reply, at: dt.datetime, text: str) -> None:
        """The front desk's free-text answer from the inbox (it ends the wait; ``inbox.reply``)."""
        if not self.take(1):
            return
        name = ""
        if reply.patient is not None:
            ar = self.pat.language[reply.patient] == "ar"
            name = self.pat.name_ar[reply.patient] if ar else self.pat.name_en[reply.patient]
        reply.answered_at, reply.answer_id = at, uuid.UUID(int=self.rng.getrandbits(128), version=4)
        reply.answer_text = text.format(name=name) if name else text.replace(" {name}", "")
        reply.read_at = max(reply.at, at - dt.timedelta(minutes=1))
        staff = self.story.staff
        self.audit(staff.front_desk_id, staff.front_desk_username, "inbox.reply", "conversation", reply.address,
                   {"message_id": str(reply.answer_id), "channel": "whatsapp", "template": None,
                    "waiting_since": reply.at.isoformat()}, at)

    def done(self, reply: _Reply, at: dt.datetime, *, waited: dt.datetime | None) -> None:
        """The front desk marked the thread done (``inbox.done``, with the wait it ended)."""
        reply.done_at = at
        staff = self.story.staff
        self.audit(staff.front_desk_id, staff.front_desk_username, "inbox.done", "conversation", reply.address,
                   {"waiting_since": waited.isoformat() if waited else None}, at)

    def audit(self, actor_id: uuid.UUID | None, actor_name: str, action: str, object_type: str, object_id: Any,
              details: dict[str, Any], at: dt.datetime) -> None:
        """An audit event as ``audit.record`` writes it (a conversation is named by its address until written)."""
        self.story.audit.append({
            "id": uuid.UUID(int=self.rng.getrandbits(128), version=4), "tenant_id": self.story.tenant_id,
            "actor_id": actor_id, "actor_name": actor_name, "action": action, "object_type": object_type,
            "object_id": object_id, "details": details, "created_at": at})

    # -- the current inbox ----------------------------------------------------------------------------

    def _scene(self, scene: InboxScene, appts: list[_Appt]) -> None:
        """One thread of the current inbox (``content.INBOX_SCENES``)."""
        at = self.now - dt.timedelta(minutes=scene.minutes_ago, seconds=self.rng.randrange(60))
        appt: _Appt | None = None
        patient: int | None = None
        if scene.unknown_number:
            address = _unknown_number(set(self.pat.phone), self.rng)
        else:
            appt = self.scene_appointment(scene, appts, at, strict=True) or self.scene_appointment(
                scene, appts, at, strict=False)
            if appt is not None:
                patient = appt.patient
            else:  # a tiny demo: a patient with no reminder to answer
                free = [p for p in range(len(self.pat.ids)) if p not in self.used and self.reachable(p, at)]
                matching = [p for p in free if self.pat.language[p] == scene.language] or free
                if not matching:
                    return
                patient = self.rng.choice(matching)
            self.used.add(patient)
            address = self.pat.phone[patient]
        ref = None
        if appt is not None:
            appt.taken = True
            self.take(len(appt.sendable))
            self.send(appt)
            about = _latest_before(appt, at)
            if about is not None and about.ref is not None:
                ref = about.ref
                self.answered(ref, at)
        intent = classify(scene.body)
        reply = _Reply(address, patient, scene.body, at, intent, _front_desk_outcome(intent, awaiting=appt is not None),
                       appointment=appt, in_reply_to=ref)
        handled = at + dt.timedelta(minutes=scene.handled_after_minutes)
        if scene.how == "answered":  # in the patient's language
            same = patient is None or self.pat.language[patient] == scene.language
            language = self.pat.language[patient] if patient is not None else "en"
            self.answer(reply, handled, scene.answer if same else STAFF_ANSWERS[language][1])
        elif scene.how == "done":
            reply.read_at = handled - dt.timedelta(minutes=1)
            self.done(reply, handled, waited=at)
        elif scene.how == "assigned":
            reply.assigned_at = at + dt.timedelta(minutes=6)
            staff = self.story.staff
            self.audit(staff.admin_id, staff.admin_username, "inbox.assign", "conversation", address,
                       {"from": "", "to": staff.front_desk_name}, reply.assigned_at)
        self.story.replies.append(reply)

    def scene_appointment(self, scene: InboxScene, appts: list[_Appt], at: dt.datetime, *,
                          strict: bool) -> _Appt | None:
        """An open appointment whose WhatsApp reminder the patient answers at ``at`` (in the scene's
        language when ``strict``)."""
        for appt in appts:
            sent = _whatsapp(appt)
            if (sent is None or appt.taken or appt.patient in self.used
                    or appt.row["status"] != AppointmentStatus.BOOKED
                    or not sent.at + dt.timedelta(minutes=5) <= at <= appt.starts - dt.timedelta(minutes=10)
                    or any(sent.at < s.at <= at for s in appt.sendable)  # it answers the WhatsApp reminder
                    or not self.reachable(appt.patient, sent.at) or len(appt.sendable) + 1 > self.budget):
                continue
            if strict and self.pat.language[appt.patient] != scene.language:
                continue
            return appt
        return None

    def _final_status(self, appt: _Appt) -> None:
        """A past appointment's attendance as the clinic's system recorded it after the visit."""
        if not appt.past or appt.row["status"] == AppointmentStatus.CANCELLED:
            return
        confirmed = appt.row["status_source"] == "reply"
        group = "confirmed" if confirmed else "reminded" if appt.sendable else "not_reminded"
        final = AppointmentStatus.NO_SHOW if self.rng.random() < NO_SHOW[group] else AppointmentStatus.COMPLETED
        after = appt.starts + dt.timedelta(minutes=appt.row["duration_minutes"] + self.rng.randrange(10, 90))
        _set_status(appt, final, "api", min(after, self.now - dt.timedelta(seconds=self.rng.randrange(60, 600))))


CANCELLED_REMINDER = "cancelled"  # a reminder the appointment's cancellation stopped


def _whatsapp(appt: _Appt) -> _Sent | None:
    return next((s for s in appt.sendable if s.rule.channel == "whatsapp"), None)


def _latest_before(appt: _Appt, at: dt.datetime) -> _Sent | None:
    """The appointment's latest reminder sent before ``at`` (what a reply then answers: ``receive._awaiting``)."""
    return max((s for s in appt.sendable if s.at <= at and s.ref is not None), key=lambda s: s.at, default=None)


def _front_desk_outcome(intent: ReplyIntent, *, awaiting: bool) -> str:
    """What ``receive_reply`` stores on a reply it leaves for a person (``receive._act``)."""
    if intent == ReplyIntent.RESCHEDULE:
        return f"{FOR_FRONT_DESK} the patient asks for another time"
    if intent in (ReplyIntent.CONFIRM, ReplyIntent.CANCEL) and not awaiting:
        return f"{FOR_FRONT_DESK} no appointment awaits an answer from this number"
    return f"{FOR_FRONT_DESK} not clearly understood"


def _unknown_number(taken: set[str], rng: random.Random) -> str:
    """A Saudi mobile number no patient of the clinic has."""
    while True:
        number = f"+966{rng.choice(MOBILE_PREFIXES[:5])}{rng.randrange(10**7):07d}"
        if number not in taken:
            return number


def _set_status(appt: _Appt, status: AppointmentStatus, source: str, at: dt.datetime) -> None:
    row = appt.row
    row["status"], row["status_source"], row["status_changed_at"] = status, source, at
    row["updated_at"] = max(row["updated_at"], at)


# -- writing -----------------------------------------------------------------------------------------


def write_story(conn: Connection, write: Callable[[Table, list[dict[str, Any]]], None], plan: history.ClinicPlan,
                story: Story, clock: history.Clock, rng: random.Random, *,
                logs_from: dt.datetime | None) -> tuple[int, int, int, int]:
    """Write the story's rows once the history (its fixed messages) is written; returns (reminders,
    replies, messages, message events) written."""
    ids = {k: [uuid.UUID(int=uid) for uid in t.fixed_ids] for k, t in enumerate(plan.templates)}
    for k, t in enumerate(plan.templates):
        if len(ids[k]) != len(t.fixed):
            raise RuntimeError(f"demo seeder: {len(t.fixed) - len(ids[k])} fixed messages of {t.code} were not made")

    def message(ref: tuple[int, int] | None) -> uuid.UUID | None:
        return None if ref is None else ids[ref[0]][ref[1]]

    messages, logs = _write_answers(write, plan, story, clock, rng, logs_from)
    threads = _threads(story, plan.patients.ids)
    write(Conversation.__table__, _with_defaults(Conversation.__table__, list(threads.values())))
    write(InboundMessage.__table__, _with_defaults(InboundMessage.__table__, [{
        "id": r.id, "tenant_id": story.tenant_id, "conversation_id": threads[r.address]["id"],
        "patient_id": _patient_id(plan, r.patient), "channel": "whatsapp",
        "from_address": r.address, "to_address": story.phone, "body": r.body, "button_payload": r.button_payload,
        "button_text": r.button_text, "provider_message_id": f"SM{rng.getrandbits(128):032x}", "received_at": r.at,
        "intent": r.intent, "appointment_id": r.appointment.row["id"] if r.appointment else None,
        "in_reply_to_id": message(r.in_reply_to), "outcome": r.outcome[:200], "read_at": r.read_at,
    } for r in sorted(story.replies, key=lambda r: r.at)]))
    reminders = _reminder_rows(story, message)
    write(AppointmentReminder.__table__, _with_defaults(AppointmentReminder.__table__, reminders))
    for event in story.audit:
        if event["object_type"] == "conversation":
            event["object_id"] = threads[event["object_id"]]["id"]
        event["object_id"] = str(event["object_id"])
    write(AuditEvent.__table__, _with_defaults(AuditEvent.__table__, sorted(story.audit,
                                                                             key=lambda e: e["created_at"])))
    windows: dict[int, dt.datetime] = {}
    for r in story.replies:
        if r.patient is not None:
            windows[r.patient] = max(r.at, windows.get(r.patient, r.at))
    if windows:
        table = Patient.__table__
        conn.execute(update(table).where(table.c.id == bindparam("b_id"), table.c.tenant_id == story.tenant_id)
                     .values(whatsapp_last_inbound_at=bindparam("b_at")),
                     [{"b_id": plan.patients.ids[p], "b_at": at} for p, at in windows.items()])
    return len(reminders), len(story.replies), messages, logs


def _patient_id(plan: history.ClinicPlan, patient: int | None) -> uuid.UUID | None:
    return plan.patients.ids[patient] if patient is not None else None


def _with_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return rows
    defaults = column_defaults(table, set(rows[0]))
    return [{**defaults, **row} for row in rows] if defaults else rows


def _reminder_rows(story: Story, message: Callable[[tuple[int, int] | None], uuid.UUID | None]
                   ) -> list[dict[str, Any]]:
    rows = []
    for appt in story.appointments:
        base = {"tenant_id": story.tenant_id, "appointment_id": appt.row["id"], "rule_revision": 1}
        for sent in appt.sendable:
            if sent.ref is None:
                continue
            rows.append({**base, "id": uuid.uuid4(), "rule_id": sent.rule.id, "status": ReminderStatus.SENT,
                         "due_at": sent.due, "moved_reason": sent.moved, "status_reason": "",
                         "message_id": message(sent.ref), "planned_at": appt.booked, "sent_at": sent.at,
                         "sent_for_starts_at": appt.row["starts_at"]})
        for rule, due, moved, why in appt.not_sent:
            if why == CANCELLED_REMINDER:
                status, reason = ReminderStatus.CANCELLED, CLOSED_REASONS[AppointmentStatus.CANCELLED]
                planned = appt.row["status_changed_at"]
            else:
                status, reason, planned = ReminderStatus.SKIPPED, why, appt.booked
            rows.append({**base, "id": uuid.uuid4(), "rule_id": rule.id, "status": status, "due_at": due,
                         "moved_reason": moved, "status_reason": reason, "message_id": None, "planned_at": planned,
                         "sent_at": None, "sent_for_starts_at": None})
    return rows


def _threads(story: Story, patient_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """Each address's conversation after its replies and what the front desk did, in time order (as
    ``receive._file`` and the inbox's services leave it)."""
    by_address: dict[str, list[_Reply]] = {}
    for reply in story.replies:
        by_address.setdefault(reply.address, []).append(reply)
    threads = {}
    for address, replies in by_address.items():
        events: list[tuple[dt.datetime, int, str, _Reply]] = []
        for r in replies:
            events.append((r.at, 0, "in", r))
            if r.answered_at is not None:
                events.append((r.answered_at, 1, "answer", r))
            if r.done_at is not None:
                events.append((r.done_at, 2, "done", r))
        events.sort(key=lambda e: (e[0], e[1]))
        thread: dict[str, Any] = {"id": uuid.uuid4(), "tenant_id": story.tenant_id, "address": address,
                                  "patient_id": None, "state": ConversationState.OPEN, "waiting_since": None,
                                  "done_at": None, "done_by_id": None, "assigned_to_id": None,
                                  "created_at": events[0][0]}
        for at, _order, kind, r in events:
            if kind == "in":
                thread["last_inbound_at"], thread["last_intent"] = at, r.intent
                if r.for_front_desk:
                    thread["state"], thread["done_at"], thread["done_by_id"] = ConversationState.OPEN, None, None
                    thread["waiting_since"] = thread["waiting_since"] or at
                elif at == thread["created_at"]:  # nothing for the front desk: the new thread starts done
                    thread["state"], thread["done_at"] = ConversationState.DONE, at
            elif kind == "answer":
                thread["waiting_since"] = None
            else:
                thread["state"], thread["done_at"] = ConversationState.DONE, at
                thread["done_by_id"], thread["waiting_since"] = story.staff.front_desk_id, None
            thread["updated_at"] = at
        thread["unread_count"] = sum(1 for r in replies if r.read_at is None)
        if any(r.assigned_at for r in replies):
            thread["assigned_to_id"] = story.staff.front_desk_id
        patient = replies[0].patient
        thread["patient_id"] = patient_ids[patient] if patient is not None else None
        threads[address] = thread
    return threads


def _write_answers(write: Callable[[Table, list[dict[str, Any]]], None], plan: history.ClinicPlan, story: Story,
                   clock: history.Clock, rng: random.Random, logs_from: dt.datetime | None) -> tuple[int, int]:
    """The front desk's answers: free-text WhatsApp messages written by the front desk user, with their
    status timelines."""
    rows: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    price = pricing.list_price("whatsapp", 1)
    now_s = clock.now_s
    for r in story.replies:
        if r.answer_id is None or r.answered_at is None:
            continue
        created = clock.seconds(r.answered_at)
        claimed, sent = created + 1, created + 2
        delivered = sent + rng.choice(history.DELIVERY_DELAYS["whatsapp"])
        read = delivered + rng.randrange(20, 600)
        kind = history.READ if read < now_s else history.DELIVERED if delivered < now_s else history.SENT
        read_s = read if kind == history.READ else None
        delivered_s = delivered if kind != history.SENT else None
        updated = read_s or delivered_s or sent
        outcome = history.Outcome(kind, kind)
        language = plan.patients.language[r.patient] if r.patient is not None else "en"
        rows.append({
            "id": r.answer_id, "tenant_id": story.tenant_id, "patient_id": _patient_id(plan, r.patient),
            "bulk_job_id": None, "template_id": None, "template_version_id": None,
            "created_by_id": story.staff.front_desk_id, "channel": "whatsapp", "message_class": "service",
            "recipient": r.address, "language": language, "subject": "", "body": r.answer_text, "status": kind,
            "status_reason": "", "error_code": None, "provider": "twilio", "sender": f"whatsapp:{plan.phone}",
            "provider_message_id": f"SM{rng.getrandbits(128):032x}", "segments": 1, "price": Decimal(price),
            "price_unit": "USD", "is_test": False, "urgent": False, "attempts": 1, "scheduled_at": None,
            "queued_at": clock.at(created), "enqueued_at": clock.at(created), "claimed_at": clock.at(claimed),
            "sent_at": clock.at(sent), "delivered_at": clock.at(delivered_s), "read_at": clock.at(read_s),
            "finished_at": clock.at(read_s), "created_at": clock.at(created), "updated_at": clock.at(updated),
        })
        if logs_from is None or r.answered_at >= logs_from:
            for from_status, to_status, when, code, detail in writers.timeline(
                    outcome, created, created, claimed, sent, delivered_s, read_s, updated):
                logs.append({"id": uuid.uuid4(), "tenant_id": story.tenant_id, "message_id": r.answer_id,
                             "event": "status", "from_status": from_status, "to_status": to_status,
                             "provider": "twilio" if from_status else None, "error_code": code, "detail": detail,
                             "created_at": clock.at(when)})
    columns = set(Message.__table__.c.keys())
    rows = [{k: v for k, v in row.items() if k in columns} for row in rows]
    write(Message.__table__, _with_defaults(Message.__table__, rows))
    write(MessageLog.__table__, _with_defaults(MessageLog.__table__, logs))
    return len(rows), len(logs)
