"""What every fit of the analysis shares: a status for soft failures, intervals, least squares, and
the bootstrap that resamples a study's seeds (or, with one seed per run, its cells).

A soft failure (too few points, an optimiser that did not converge) is a `FitStatus` on a frozen
result, reported in plain words; a hard one (no runs at all) is an exception before any fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeVar

import numpy as np

from raysweep.analysis.runs import CellBest, ComputeAxis, Runs

BOOTSTRAP_REPLICATES: Final = 200  # enough for 95% percentile intervals to settle to about 2 digits
LEVEL: Final = 0.95  # every interval is a two-sided 95% one

T = TypeVar("T")


class FitStatus(str, Enum):
    OK = "ok"
    TOO_FEW_POINTS = "too_few_points"  # fewer points than the fit has parameters (plus one)
    NOT_CONVERGED = "not_converged"  # the optimiser stopped without meeting its tolerance
    DEGENERATE = "degenerate"  # the points do not vary along the axis the fit needs

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float

    def to_json(self) -> list[float | None]:
        return [_finite_or_none(self.lo), _finite_or_none(self.hi)]

    def __str__(self) -> str:
        return f"[{self.lo:.4g}, {self.hi:.4g}]"

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


NO_INTERVAL: Final = Interval(math.nan, math.nan)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def percentile_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The percentile interval of the finite bootstrap values; nan when fewer than 10 are finite."""
    vals = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(vals) < 10:
        return NO_INTERVAL
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(vals, [tail, 100 - tail])
    return Interval(float(lo), float(hi))


@dataclass(frozen=True)
class Line:
    """y = intercept + slope * x by least squares."""

    slope: float
    intercept: float
    r2: float
    n: int


def fit_line(x: Sequence[float], y: Sequence[float]) -> Line | None:
    """Least squares; None with fewer than 2 points or no spread in x."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) < 2 or np.ptp(xa) == 0:
        return None
    slope, intercept = np.polyfit(xa, ya, 1)
    resid = ya - (intercept + slope * xa)
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return Line(float(slope), float(intercept), r2, len(xa))


# The bootstrap --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resampler:
    """Draws bootstrap replicates of a study's cells.

    Where every cell ran some LR with two or more seeds (`Runs.has_seeds`), each (model, budget, LR)
    keeps its own seeds, drawn with replacement, and every cell settles its best LR again: the
    interval then says how much seed noise moves the result. Otherwise (one seed a run, or new seeds
    for only some cells) the cells themselves are drawn with replacement.
    """

    runs: Runs
    axis: ComputeAxis
    replicates: int = BOOTSTRAP_REPLICATES
    seed: int = 0

    @property
    def method(self) -> str:
        return "seeds" if self.runs.has_seeds() else "cells"

    def draws(self, limit: int | None = None) -> Iterator[list[CellBest]]:
        rng = np.random.default_rng(self.seed)
        n = self.replicates if limit is None else min(limit, self.replicates)
        if self.method == "seeds":
            groups = {k: np.array([r.val_loss for r in v]) for k, v in self.runs.groups().items()}
            for _ in range(n):
                drawn = {k: v[rng.integers(0, len(v), len(v))] for k, v in groups.items()}
                yield self.runs.cells(self.axis, losses=drawn)
        else:
            cells = self.runs.cells(self.axis)
            for _ in range(n):
                yield [cells[i] for i in rng.integers(0, len(cells), len(cells))]

    def collect(self, stat: Callable[[list[CellBest]], T | None], limit: int | None = None) -> list[T]:
        """`stat` of every replicate (the first `limit`) that gives one (None: the fit could not use it)."""
        out = []
        for cells in self.draws(limit):
            value = stat(cells)
            if value is not None:
                out.append(value)
        return out
