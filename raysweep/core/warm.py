"""Warm start: a new sweep's cells take their first LR from an earlier study's fitted trend.

The earlier study's best LRs are fitted as log lr* = c + p log N + q log epochs (the paper's finding 3,
`raysweep.analysis.lr_trend`). `WarmStart.lr` evaluates that line for a cell of the new sweep, but
only inside the box of model sizes and budgets the earlier study measured: outside it the forecast
is the line's value at the box's nearest point. A log-linear fit over short budgets keeps falling
when extrapolated, while the measured optimum levels off (the LR "falls slowly"): on the recorded
tables the extrapolated line started 4-epoch cells 2-3 grid steps too low
(benchmarks/analysis/warm_start_replay.txt).

A warm-started cell does not wait for its lattice predecessors: every cell is ready at once, so a
cluster runs as many cells side by side as it holds. Its opening is one trial at the grid point
nearest the forecast when the forecast sits within `TREND_CONFIDENCE` grid steps of it, else that
point and the neighbour the forecast leans to; outside the box, where the extrapolated line rounds
to another grid point, that point and one step toward the line (`_prior.PriorRule.warm_opening`).

The plan is stored on the Optuna study (user attr `raysweep.warm_start`): a resumed sweep replays
the same forecasts even if the earlier study has grown since.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from raysweep.core.records import StudyAttr

ATTR = StudyAttr.WARM_START


@dataclass(frozen=True)
class WarmStart:
    """An earlier study's LR trend, as a forecast for the cells of a new sweep."""

    source: str  # the earlier study: an MLflow experiment name or a results table
    c: float
    p: float  # exponent of N (parameters)
    q: float  # exponent of the epoch budget
    params: tuple[float, float]  # the range of N the trend was fitted on
    epochs: tuple[float, float]  # the range of budgets it was fitted on
    n_cells: int = 0  # cells the trend was fitted on

    def __post_init__(self) -> None:
        for name in ("c", "p", "q"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"`{name}` must be finite, but got {getattr(self, name)!r}")
        for name in ("params", "epochs"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi < math.inf:
                raise ValueError(f"`{name}` must be a range 0 < low <= high, but got {(lo, hi)!r}")

    def lr(self, params: float, epochs: float) -> float:
        """The forecast optimal LR, the trend held at the fitted box's edge outside it."""
        n = min(self.params[1], max(self.params[0], params))
        e = min(self.epochs[1], max(self.epochs[0], epochs))
        return self.line(n, e)

    def line(self, params: float, epochs: float) -> float:
        """The fitted line itself, extrapolated as far as asked."""
        return math.exp(self.c + self.p * math.log(params) + self.q * math.log(epochs))

    def extrapolates(self, params: float, epochs: float) -> bool:
        return not (self.params[0] <= params <= self.params[1] and self.epochs[0] <= epochs <= self.epochs[1])

    def plan(self, cells: Mapping[str, tuple[float, float]]) -> WarmPlan:
        """The forecast for each cell, by name: cells maps a cell name to its (params, epochs)."""
        held = {name: self.line(n, e) for name, (n, e) in cells.items() if self.extrapolates(n, e)}
        return WarmPlan(self.source, {name: self.lr(n, e) for name, (n, e) in cells.items()}, held)

    def describe(self) -> str:
        return (f"lr ~ {math.exp(self.c):.3g} N^{self.p:+.3f} epochs^{self.q:+.3f} from {self.n_cells} cells of "
                f"{self.source} (N {self.params[0]:,.0f}-{self.params[1]:,.0f}, epochs {self.epochs[0]:g}-{self.epochs[1]:g})")


@dataclass(frozen=True)
class WarmPlan:
    """The warm start a searcher uses: each cell's forecast LR (off the grid), by cell name."""

    source: str
    lrs: Mapping[str, float]
    # cells outside the fitted box -> the fitted line's value there (the way it says the optimum moves)
    held: Mapping[str, float] = field(default_factory=dict)

    def index(self, name: str, grid: tuple[float, ...]) -> float:
        """The forecast as a fractional index of a geometric LR grid."""
        return _index(self.lrs[name], grid)

    def line_index(self, name: str, grid: tuple[float, ...]) -> float | None:
        """For a held cell, the extrapolated line as a fractional grid index; else None."""
        return _index(self.held[name], grid) if name in self.held else None

    def to_attr(self) -> dict[str, Any]:
        return {"source": self.source, "lrs": dict(sorted(self.lrs.items())), "held": dict(sorted(self.held.items()))}

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any]) -> WarmPlan:
        return cls(str(attr["source"]), {str(k): float(v) for k, v in attr["lrs"].items()},
                   {str(k): float(v) for k, v in attr.get("held", {}).items()})


def _index(lr: float, grid: tuple[float, ...]) -> float:
    if len(grid) == 1:
        return 0.0
    return math.log(lr / grid[0]) / math.log(grid[1] / grid[0])
