"""Chart builders and CSV export, without Streamlit: figure data, titles and axis labels."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pandas as pd
import pytest

from app.analytics import charts
from app.analytics.chart_csv import to_csv
from app.csv_safe import neutralise

DAY1, DAY2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)


def _title(figure) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    layout = figure.layout
    return layout.title.text, layout.xaxis.title.text, layout.yaxis.title.text


def test_daily_trend_stacks_each_outcome_per_day() -> None:
    daily = pd.DataFrame({"Day": [DAY1, DAY2], "Delivered": [5, 7], "Failed": [1, 0], "In progress": [0, 2],
                          "Not sent": [0, 1]})
    figure = charts.daily_trend(daily)
    assert _title(figure) == ("Messages per day by outcome", "Day (clinic time)", "Messages")
    bars = {trace.name: list(trace.y) for trace in figure.data}
    assert bars == {"Delivered": [5, 7], "Failed": [1, 0], "In progress": [0, 2], "Not sent": [0, 1]}
    assert figure.layout.barmode == "relative"


def test_delivery_rate_has_one_line_per_channel() -> None:
    delivery = pd.DataFrame({"Day": [DAY1, DAY1, DAY2], "Channel": ["SMS", "WhatsApp", "SMS"],
                             "Success rate (%)": [90.0, 98.5, 80.0]})
    figure = charts.delivery_rate_over_time(delivery)
    assert _title(figure) == ("Delivery success rate per day and channel", "Day (clinic time)",
                              "Delivered of messages with an outcome (%)")
    assert {t.name: list(t.y) for t in figure.data} == {"SMS": [90.0, 80.0], "WhatsApp": [98.5]}


def test_failure_pareto_sorts_bars_and_adds_the_cumulative_line() -> None:
    failures = pd.DataFrame({"Code": ["30003", "21211"], "Reason": ["Unreachable handset.", "Invalid number."],
                             "Suggested action": ["", ""], "Messages": [8, 2], "Cumulative share (%)": [80.0, 100.0]})
    figure = charts.failure_pareto(failures)
    bars, line = figure.data
    assert list(bars.y) == [8, 2] and list(bars.x) == ["30003: Unreachable handset.", "21211: Invalid number."]
    assert list(line.y) == [80.0, 100.0] and line.yaxis == "y2"
    assert _title(figure) == ("Why messages failed (Pareto)", "Failure reason", "Failed messages")
    assert figure.layout.yaxis2.title.text == "Cumulative share of failures (%)"


def test_heatmap_has_every_weekday_and_hour_in_clinic_time() -> None:
    heat = pd.DataFrame({"Weekday": ["Monday", "Sunday"], "Hour": [9, 23], "Messages": [4, 1],
                         "Success rate (%)": [75.0, None]})
    figure = charts.send_heatmap(heat)
    grid = figure.data[0]
    assert grid.y[0] == "Monday" and len(grid.y) == 7 and len(grid.x) == 24 and grid.x[9] == "09:00"
    assert grid.z[0][9] == 4 and grid.z[6][23] == 1
    assert _title(figure) == ("Messages sent by weekday and hour", "Hour of day (clinic time)", "Weekday")
    assert charts.send_heatmap(heat, value="Success rate (%)").layout.title.text == "Success rate by weekday and hour"


@pytest.mark.parametrize(("builder", "frame", "title"), [
    (charts.channel_breakdown, pd.DataFrame({"Channel": ["SMS"], "Messages": [3]}), "Messages by channel"),
    (charts.channel_comparison, pd.DataFrame({"Channel": ["SMS"], "Messages": [3], "Success rate (%)": [50.0]}),
     "Channels compared: volume and success rate"),
    (charts.top_templates, pd.DataFrame({"Template": ["A", "B"], "Messages": [3, 9]}), "Top templates by volume"),
    (charts.cost_per_day, pd.DataFrame({"Day": [DAY1], "Channel": ["SMS"], "Cost": [0.5]}), "Cost per day by channel"),
    (charts.cost_per_template, pd.DataFrame({"Template": ["A"], "Cost": [0.5]}), "Cost per template"),
    (charts.whatsapp_read_rate, pd.DataFrame({"Day": [DAY1], "Read rate (%)": [60.0]}), "WhatsApp read rate per day"),
    (charts.optout_trend, pd.DataFrame({"Day": [DAY1], "Channel": ["SMS"], "Opt-outs": [2]}), "Opt-outs per day"),
    (charts.bulk_outcomes, pd.DataFrame({"Job": ["Flu"], "Delivered": [5], "Failed": [1], "In progress": [0],
                                         "Not sent": [0]}), "Bulk job outcomes"),
])
def test_every_chart_has_a_title_and_worded_axes(builder, frame: pd.DataFrame, title: str) -> None:  # type: ignore[no-untyped-def]
    figure = builder(frame)
    text, x, y = _title(figure)
    assert text == title and x and y
    assert figure.data, "the chart shows the data"


def test_top_templates_puts_the_biggest_first() -> None:
    frame = pd.DataFrame({"Template": ["A", "B", "C"], "Messages": [3, 9, 1], "Success rate (%)": [90.0, None, 50.0]})
    bars = charts.top_templates(frame, limit=2).data[0]
    assert list(bars.y) == ["A", "B"]  # drawn bottom-up: B (9) on top
    by_rate = charts.top_templates(frame, by="Success rate (%)").data[0]
    assert list(by_rate.y) == ["C", "A"]  # no rate (no outcome yet) is left out


def test_csv_export_neutralises_formulas_and_keeps_arabic() -> None:
    frame = pd.DataFrame({"Template": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "تذكير"],
                          "Messages": [1, 2, 3, 4, 5, 6, 7]})
    data = to_csv(frame)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Template", "Messages"]
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "تذكير"]
    assert [r[1] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6", "7"]  # numbers stay numbers
    assert neutralise(-5) == "-5" and neutralise("ok") == "ok"
