"""Reading one cell of a results table (CSV): a number, or the one-line error that names the cell.

Shared by the searcher replay (`raysweep.bench.table`) and the analysis (`raysweep.analysis.runs`),
which read the same tables (rows from `raysweep.results.csv_rows.read_rows`).
"""

from __future__ import annotations

import math

from raysweep.core.errors import SpecError


def number(text: str, *, file: str, key: str, positive: bool = False) -> float:
    """`text` as a finite (and, with `positive`, > 0) float, else a SpecError naming `file` and `key`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        want = "a positive number" if positive else "a finite number"
        raise SpecError(f"expected {want}, got {text!r}", file=file, key=key)
    return value


def loss(text: str, *, file: str, key: str) -> float:
    """A validation loss: a number, or inf for a diverged run (empty, inf or nan in the table)."""
    if not text or text.lower() in ("inf", "+inf", "infinity", "nan"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise SpecError(
            f"expected a number, or inf / nan / empty for a diverged run, got {text!r}", file=file, key=key
        ) from None
    return value if math.isfinite(value) else math.inf
