"""One maintenance pass, run periodically by every worker and by the embedded runner.

The delivery sweep (``app.delivery.sweeper``: scheduled messages due, lost jobs, stuck sends,
unknown outcomes) and the services' own periodic work: WhatsApp approvals of linked Content
templates, bulk expansions no worker is on, bulk jobs whose messages have all ended (completed),
appointment reminders (planned for appointments changed another way, sent when due), and the
reporting rollups. Each step runs whatever
happened to the one before (a Content API outage never holds up delivery).
"""

from __future__ import annotations

import datetime as dt

from app.analytics import rollups
from app.delivery import sweeper
from app.delivery.runtime import Runtime
from app.services.bulk import expansion, jobs
from app.services.reminders import dispatch as reminder_dispatch
from app.services.reminders import planner as reminder_planner
from app.services.whatsapp_templates import refresh_due_approvals


def run_pass(runtime: Runtime, now: dt.datetime | None = None) -> sweeper.SweepReport:
    """Sweep delivery, then the services' periodic work; what each step did."""
    now = now or runtime.clock()
    report = sweeper.run_sweep(runtime, now)
    report.approvals_changed = sweeper.run_step(report, "refresh WhatsApp approvals", refresh_due_approvals,
                                                runtime.engine, runtime.settings, now) or 0
    report.resumed_expansions = sweeper.run_step(report, "resume lost expansions", expansion.resume_lost,
                                                 runtime, now) or 0
    report.cancelled_settled = sweeper.run_step(report, "settle cancelled bulk jobs", jobs.settle_cancelled,
                                                runtime, now) or 0
    report.completed_jobs = sweeper.run_step(report, "complete finished bulk jobs", jobs.complete_finished,
                                             runtime, now) or 0
    report.reminders_planned = sweeper.run_step(report, "plan reminders of changed appointments",
                                                reminder_planner.plan_changed, runtime.engine, now) or 0
    report.reminders_sent = sweeper.run_step(report, "send due reminders", reminder_dispatch.send_due,
                                             runtime, now) or 0
    rollups.refresh_quietly(runtime.engine, runtime.settings.rollup_refresh_overlap_seconds)
    return report
