"""Reading one cell of a results table (CSV): a number, or the one-line error that names the cell.

Shared by the searcher replay (`raysweep.bench.table`) and the analysis (`raysweep.analysis.runs`),
which read the same tables.
"""

from __future__ import annotations

import math

from raysweep.errors import SpecError


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
