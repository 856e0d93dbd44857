"""A chart's data as CSV: the frame's rows through the one CSV writer (``app.csv_safe``)."""

from __future__ import annotations

import pandas as pd

from app.csv_safe import to_csv as write_csv


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a byte-order mark; text neutralised, numbers (negative ones too) kept as numbers."""
    cells = frame.astype(object).where(frame.notna(), None)
    return write_csv([str(c) for c in frame.columns], cells.itertuples(index=False, name=None))
