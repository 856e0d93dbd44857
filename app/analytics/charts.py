"""Plotly figures of the Dashboard and Analytics tables: titles and axis labels in words.

Each builder takes a table from ``app.services.analytics`` and returns a figure; no Streamlit.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from app.analytics.reminders import NOT_REMINDED, REMINDED
from app.analytics.stats import WEEKDAYS, Outcome
from db.enums import ReplyIntent

OUTCOME_COLOURS = {"Delivered": "#2e7d32", "Failed": "#c62828", "In progress": "#1565c0", "Not sent": "#9e9e9e"}
CHANNEL_COLOURS = {"SMS": "#1565c0", "WhatsApp": "#2e7d32", "Email": "#6a1b9a"}
OUTCOME_LABELS = [o.label for o in Outcome]


def _finish(figure: go.Figure, title: str, x: str, y: str) -> go.Figure:
    figure.update_layout(title={"text": title}, xaxis_title=x, yaxis_title=y, legend_title_text="",
                         margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


DAY_MS = 86_400_000  # a date axis counts in milliseconds
FEW_TICKS = 14  # up to this many days (or weeks) on the axis: one tick each


def _rate_axis(title: str) -> dict:
    """A right-hand axis for a percentage over bars: its own round ticks (0, 25 ... 100), no second grid;
    the legend goes above the plot, clear of the axis's labels."""
    return {"title": {"text": title}, "overlaying": "y", "side": "right", "range": [0, 105], "tickmode": "linear",
            "tick0": 0, "dtick": 25, "showgrid": False}


def _legend_on_top(figure: go.Figure) -> None:
    figure.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1})


def _by_day(figure: go.Figure, days: pd.Series, *, step_days: int = 1, bars: bool = False) -> None:
    """A date axis of days (or weeks) that says so when there are few: one tick per day or week, not hours;
    bars a day (week) wide however few days have data."""
    if bars:
        figure.update_traces(width=DAY_MS * step_days * 0.8)
    values = pd.to_datetime(pd.Series(days)).dropna()
    if not values.empty and (values.max() - values.min()).days <= FEW_TICKS * step_days:
        figure.update_xaxes(tick0=values.min(), dtick=DAY_MS * step_days)


def _whole_numbers(figure: go.Figure, counts: pd.Series) -> None:
    """A count axis with whole-number ticks (no 0.5 appointments) when the counts are small."""
    top = pd.Series(counts).max() if len(counts) else 0
    if pd.notna(top) and top <= 10:
        figure.update_yaxes(tick0=0, dtick=1, rangemode="tozero")


def daily_trend(daily: pd.DataFrame) -> go.Figure:
    """Messages per day, stacked by outcome."""
    long = daily.melt(id_vars=["Day"], value_vars=OUTCOME_LABELS, var_name="Outcome", value_name="Messages")
    figure = px.bar(long, x="Day", y="Messages", color="Outcome", color_discrete_map=OUTCOME_COLOURS,
                    category_orders={"Outcome": OUTCOME_LABELS})
    return _finish(figure, "Messages per day by outcome", "Day (clinic time)", "Messages")


def channel_breakdown(channels: pd.DataFrame) -> go.Figure:
    figure = px.bar(channels, x="Channel", y="Messages", color="Channel", color_discrete_map=CHANNEL_COLOURS,
                    text="Messages")
    return _finish(figure, "Messages by channel", "Channel", "Messages")


def delivery_rate_over_time(delivery: pd.DataFrame) -> go.Figure:
    figure = px.line(delivery, x="Day", y="Success rate (%)", color="Channel", markers=True,
                     color_discrete_map=CHANNEL_COLOURS)
    figure.update_yaxes(range=[0, 100])
    return _finish(figure, "Delivery success rate per day and channel", "Day (clinic time)",
                   "Delivered of messages with an outcome (%)")


def channel_comparison(channels: pd.DataFrame) -> go.Figure:
    """Volume (bars) and success rate (dots, right axis) per channel."""
    figure = go.Figure()
    figure.add_bar(x=channels["Channel"], y=channels["Messages"], name="Messages",
                   marker_color=[CHANNEL_COLOURS.get(c, "#607d8b") for c in channels["Channel"]])
    figure.add_scatter(x=channels["Channel"], y=channels["Success rate (%)"], name="Success rate (%)",
                       mode="markers+text", text=channels["Success rate (%)"], textposition="top center",
                       yaxis="y2", marker={"size": 12, "color": "#212121"})
    figure.update_layout(yaxis2=_rate_axis("Success rate (%)"))
    _legend_on_top(figure)
    return _finish(figure, "Channels compared: volume and success rate", "Channel", "Messages")


def top_templates(templates: pd.DataFrame, *, by: str = "Messages", limit: int = 10) -> go.Figure:
    """The templates with the most messages (or the best success rate), best at the top."""
    top = templates.dropna(subset=[by]).nlargest(limit, by).iloc[::-1]
    figure = px.bar(top, x=by, y="Template", orientation="h", text=by)
    label = "Messages" if by == "Messages" else "Delivered of messages with an outcome (%)"
    return _finish(figure, f"Top templates by {'volume' if by == 'Messages' else 'success rate'}", label,
                   "Template")


def failure_pareto(failures: pd.DataFrame) -> go.Figure:
    """Failed messages per reason, most first, with the cumulative share (Pareto)."""
    labels = [f"{code}: {reason}" if len(reason) < 60 else f"{code}: {reason[:57]}..."
              for code, reason in zip(failures["Code"], failures["Reason"], strict=True)]
    figure = go.Figure()
    figure.add_bar(x=labels, y=failures["Messages"], name="Failed messages", marker_color="#c62828")
    figure.add_scatter(x=labels, y=failures["Cumulative share (%)"], name="Cumulative share (%)",
                       mode="lines+markers", yaxis="y2", line={"color": "#212121"})
    figure.update_layout(yaxis2=_rate_axis("Cumulative share of failures (%)"))
    _legend_on_top(figure)
    return _finish(figure, "Why messages failed (Pareto)", "Failure reason", "Failed messages")


def cost_per_day(cost: pd.DataFrame) -> go.Figure:
    figure = px.bar(cost, x="Day", y="Cost", color="Channel", color_discrete_map=CHANNEL_COLOURS)
    return _finish(figure, "Cost per day by channel", "Day (clinic time)", "Cost (provider's currency)")


def cost_per_template(templates: pd.DataFrame, *, limit: int = 10) -> go.Figure:
    top = templates.nlargest(limit, "Cost").iloc[::-1]
    figure = px.bar(top, x="Cost", y="Template", orientation="h")
    return _finish(figure, "Cost per template", "Cost (provider's currency)", "Template")


def whatsapp_read_rate(reads: pd.DataFrame) -> go.Figure:
    figure = px.line(reads, x="Day", y="Read rate (%)", markers=True)
    figure.update_yaxes(range=[0, 100])
    return _finish(figure, "WhatsApp read rate per day", "Day (clinic time)", "Read of delivered messages (%)")


def send_heatmap(heatmap: pd.DataFrame, *, value: str = "Messages") -> go.Figure:
    """Weekday x hour of day (clinic time) coloured by messages sent or success rate."""
    grid = heatmap.pivot_table(index="Weekday", columns="Hour", values=value, aggfunc="sum")
    grid = grid.reindex(index=list(WEEKDAYS), columns=list(range(24)))
    figure = go.Figure(go.Heatmap(z=grid.values, x=[f"{h:02d}:00" for h in grid.columns], y=list(grid.index),
                                  colorscale="Blues" if value == "Messages" else "RdYlGn",
                                  colorbar={"title": {"text": value}}, hoverongaps=False))
    title = "Messages sent by weekday and hour" if value == "Messages" else "Success rate by weekday and hour"
    return _finish(figure, title, "Hour of day (clinic time)", "Weekday")


def optout_trend(optouts: pd.DataFrame) -> go.Figure:
    figure = px.bar(optouts, x="Day", y="Opt-outs", color="Channel", color_discrete_map=CHANNEL_COLOURS)
    return _finish(figure, "Opt-outs per day", "Day (clinic time)", "Patients who opted out")


def bulk_outcomes(jobs: pd.DataFrame) -> go.Figure:
    long = jobs.melt(id_vars=["Job"], value_vars=OUTCOME_LABELS, var_name="Outcome", value_name="Messages")
    figure = px.bar(long, x="Messages", y="Job", color="Outcome", orientation="h",
                    color_discrete_map=OUTCOME_COLOURS, category_orders={"Outcome": OUTCOME_LABELS})
    return _finish(figure, "Bulk job outcomes", "Messages", "Bulk job")


# --- reminders and replies (tables from ``app.analytics.reminders``) --------------------------------

INTENT_COLOURS = {ReplyIntent.CONFIRM.label: "#2e7d32", ReplyIntent.CANCEL.label: "#c62828",
                  ReplyIntent.RESCHEDULE.label: "#ef6c00", ReplyIntent.STOP.label: "#6d4c41",
                  ReplyIntent.START.label: "#00838f", ReplyIntent.UNCLEAR.label: "#1565c0"}


def confirmation_rate(confirmations: pd.DataFrame) -> go.Figure:
    """Reminded appointments per day and those confirmed by reply (bars), the rate (line, right axis)."""
    figure = go.Figure()
    figure.add_bar(x=confirmations["Day"], y=confirmations["Reminded appointments"], name="Reminded appointments",
                   marker_color="#90a4ae")
    figure.add_bar(x=confirmations["Day"], y=confirmations["Confirmed by reply"], name="Confirmed by reply",
                   marker_color="#2e7d32")
    figure.add_scatter(x=confirmations["Day"], y=confirmations["Confirmation rate (%)"], name="Confirmation rate (%)",
                       mode="lines+markers", yaxis="y2", line={"color": "#212121"})
    figure.update_layout(barmode="group", yaxis2=_rate_axis("Confirmed of reminded (%)"))
    _legend_on_top(figure)
    _by_day(figure, confirmations["Day"])
    _whole_numbers(figure, confirmations["Reminded appointments"])
    return _finish(figure, "Reminded appointments confirmed by reply", "Appointment day (clinic time)",
                   "Appointments")


def cancellations_by_reply(cancellations: pd.DataFrame) -> go.Figure:
    figure = px.bar(cancellations, x="Day", y="Cancelled by reply", color_discrete_sequence=["#c62828"],
                    hover_data=["Hours freed", "Median hours before the appointment"])
    _by_day(figure, cancellations["Day"], bars=True)
    _whole_numbers(figure, cancellations["Cancelled by reply"])
    return _finish(figure, "Appointments cancelled by reply (slots freed early)", "Appointment day (clinic time)",
                   "Appointments cancelled")


def no_shows_by_reminder(no_shows: pd.DataFrame) -> go.Figure:
    """The no-show rate of reminded and not-reminded appointments, each bar with its sample size."""
    labels = [f"{count} appointments" if rate is None or pd.isna(rate) else f"{rate}% of {count}"
              for rate, count in zip(no_shows["No-show rate (%)"], no_shows["With attendance recorded"], strict=True)]
    figure = px.bar(no_shows, x="Appointments", y="No-show rate (%)", text=labels, color="Appointments",
                    color_discrete_map={REMINDED: "#2e7d32", NOT_REMINDED: "#9e9e9e"})
    figure.update_traces(textposition="outside")  # a 0% bar has no height to hold its label
    figure.update_layout(showlegend=False)  # each bar is named under it
    figure.update_yaxes(range=[0, 105])
    return _finish(figure, "No-show rate: reminded and not reminded", "Appointments",
                   "No-shows of appointments with attendance recorded (%)")


def reply_time(reply_times: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    figure.add_scatter(x=reply_times["Week"], y=reply_times["Median reply time (min)"], name="Median",
                       mode="lines+markers", line={"color": "#1565c0"})
    figure.add_scatter(x=reply_times["Week"], y=reply_times["90th percentile (min)"], name="90th percentile",
                       mode="lines+markers", line={"color": "#ef6c00", "dash": "dash"})
    _by_day(figure, reply_times["Week"], step_days=7)  # a tick per week, not per day
    return _finish(figure, "Front desk reply time per week", "Week from Sunday (clinic time)",
                   "Minutes to the first answer")


def replies_by_intent(intents: pd.DataFrame) -> go.Figure:
    figure = px.bar(intents, x="Day", y="Replies", color="Intent", color_discrete_map=INTENT_COLOURS,
                    category_orders={"Intent": list(INTENT_COLOURS)})
    _by_day(figure, intents["Day"], bars=True)
    _whole_numbers(figure, intents.groupby("Day")["Replies"].sum() if not intents.empty else intents["Replies"])
    return _finish(figure, "Patients' replies by intent", "Day received (clinic time)", "Replies")
