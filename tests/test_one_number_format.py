"""One number format in the app's tables (review 19b, point 3): a count reads 5,251, not 5251, as text
writes it (``f"{n:,}"``); ``app.ui.reports.count_columns`` finds a table's columns of whole numbers."""

from __future__ import annotations

import pandas as pd

from app.ui import reports


def _formats(columns: dict) -> dict[str, str]:
    return {name: config["type_config"]["format"] for name, config in columns.items()}


def test_whole_number_columns_of_a_frame_get_thousands_separators() -> None:
    frame = pd.DataFrame({"Channel": ["SMS"], "Messages": [5251], "Success rate (%)": [92.7], "Active": [True]})

    assert _formats(reports.count_columns(frame)) == {"Messages": "%,d"}


def test_whole_number_columns_of_rows_get_thousands_separators_and_nothing_else_does() -> None:
    rows = [{"Code": "a", "Sent": 5251, "Rate": 0.93, "Active": True, "Version": 1, "Last": None},
            {"Code": "b", "Sent": 0, "Rate": None, "Active": False, "Version": 12, "Last": None}]

    assert _formats(reports.count_columns(rows)) == {"Sent": "%,d", "Version": "%,d"}
    assert reports.COUNT_FORMAT == "%,d" and reports.count_columns([]) == {}
