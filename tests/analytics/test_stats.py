"""The statistic definitions, on hand-built histories."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.analytics.stats import Outcome, Totals, median_from_histogram, outcome
from db.enums import Channel, MessageStatus

S = MessageStatus


@pytest.mark.parametrize(("channel", "status", "expected"), [
    (Channel.SMS, S.DELIVERED, Outcome.DELIVERED),
    (Channel.WHATSAPP, S.READ, Outcome.DELIVERED),
    (Channel.EMAIL, S.SENT, Outcome.DELIVERED),  # accepted by the mail server: SMTP says no more
    (Channel.SMS, S.SENT, Outcome.IN_PROGRESS),  # waiting for the delivery report
    (Channel.SMS, S.UNDELIVERED, Outcome.FAILED),
    (Channel.EMAIL, S.FAILED, Outcome.FAILED),
    (Channel.SMS, S.CANCELLED, Outcome.NOT_SENT),
    (Channel.WHATSAPP, S.SUPPRESSED, Outcome.NOT_SENT),
    (Channel.SMS, S.UNKNOWN, Outcome.IN_PROGRESS),
    (Channel.SMS, S.SCHEDULED, Outcome.IN_PROGRESS),
    (Channel.SMS, S.QUEUED, Outcome.IN_PROGRESS),
])
def test_each_status_counts_as_one_outcome(channel: Channel, status: MessageStatus, expected: Outcome) -> None:
    assert outcome(channel, status) == expected


def _measures(messages: int, *, cost: str = "0", read: int = 0, latency: tuple[int, ...] = ()) -> dict:
    bins = list(latency) + [0] * (8 - len(latency))
    return {"messages": messages, "cost": Decimal(cost), "segments": messages, "read": read,
            **{f"latency_b{i}": n for i, n in enumerate(bins)}}


def test_success_rate_is_delivered_over_messages_with_a_final_outcome() -> None:
    totals = Totals()
    totals.add(Channel.SMS, S.DELIVERED, _measures(6, cost="0.24"))
    totals.add(Channel.WHATSAPP, S.READ, _measures(2, read=2))
    totals.add(Channel.SMS, S.UNDELIVERED, _measures(2))
    totals.add(Channel.SMS, S.QUEUED, _measures(5))  # not final: not in the rate
    totals.add(Channel.SMS, S.CANCELLED, _measures(3))  # never sent: not in the rate

    assert (totals.messages, totals.delivered, totals.failed, totals.in_progress, totals.not_sent) == (18, 8, 2, 5, 3)
    assert totals.success_rate == pytest.approx(0.8)
    assert totals.read_rate == pytest.approx(0.25)
    assert totals.cost_per_delivered == Decimal("0.03")


def test_no_final_outcome_means_no_rate_rather_than_zero() -> None:
    totals = Totals()
    totals.add(Channel.SMS, S.QUEUED, _measures(4))
    assert totals.success_rate is None
    assert totals.cost_per_delivered is None
    assert totals.median_seconds_to_delivered is None


def test_median_time_to_delivered_is_interpolated_inside_its_bucket() -> None:
    # buckets: <10s, 10-30s, 30-60s, ...
    assert median_from_histogram([0, 4, 0, 0, 0, 0, 0, 0]) == pytest.approx(20.0)
    assert median_from_histogram([2, 2, 0, 0, 0, 0, 0, 0]) == pytest.approx(10.0)
    assert median_from_histogram([1, 0, 0, 0, 0, 0, 0, 4]) == pytest.approx(21600.0)  # "more than 6 h"
    assert median_from_histogram([0] * 8) is None
