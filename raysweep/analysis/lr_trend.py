"""How the best learning rate moves with model size and epoch budget (the paper's finding 3, Figure 3).

Fit: log lr* = c + p log N + q log epochs, by least squares over the cells' best LRs (one point
per cell), with bootstrap intervals. The paper expects p <= 0 and q <= 0: the optimum falls slowly
as models and budgets grow. A cell whose best LR is above its predecessor's (the same model at the
next shorter budget, or the next smaller model at the same budget) breaks monotonicity and is listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raysweep.analysis.runs import CellBest
from raysweep.analysis.stats import NO_INTERVAL, FitStatus, Interval, Resampler, percentile_interval

MIN_POINTS = 4  # three coefficients, plus one degree of freedom


@dataclass(frozen=True)
class Break:
    """A cell whose best LR rose above a predecessor's."""

    cell: str
    lr: float
    predecessor: str
    predecessor_lr: float
    along: str  # "epochs" or "size"


@dataclass(frozen=True)
class LrTrend:
    status: FitStatus
    c: float = math.nan
    p: float = math.nan  # exponent of N
    q: float = math.nan  # exponent of epochs
    r2: float = math.nan
    rmse_log2: float = math.nan  # typical miss, in factors of 2 (grid steps of the usual LR grid)
    intervals: dict[str, Interval] | None = None
    n_points: int = 0
    breaks: tuple[Break, ...] = ()
    grid_edge: tuple[str, ...] = ()  # cells whose best LR is the smallest or largest they tried
    bootstrap: str = ""
    replicates: int = 0
    samples: tuple[tuple[float, float, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.OK

    def predict(self, n: float, epochs: float) -> float:
        return math.exp(self.c + self.p * math.log(n) + self.q * math.log(epochs))

    def predict_interval(self, n: float, epochs: float) -> Interval:
        return percentile_interval([math.exp(c + p * math.log(n) + q * math.log(epochs)) for c, p, q in self.samples])

    def to_json(self) -> dict[str, object]:
        iv = self.intervals or {}
        return {
            "status": str(self.status), "c": _num(self.c), "p": _num(self.p), "q": _num(self.q), "r2": _num(self.r2),
            "rmse_log2": _num(self.rmse_log2),
            "intervals": {k: v.to_json() for k, v in iv.items()}, "n_points": self.n_points,
            "model": "log lr = c + p log N + q log epochs (natural logs; N in parameters)",
            "monotonicity_breaks": [b.__dict__ for b in self.breaks], "lr_at_grid_edge": list(self.grid_edge),
            "bootstrap": self.bootstrap, "replicates": self.replicates,
        }


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _ols(cells: Sequence[CellBest]) -> tuple[float, float, float, float, float] | None:
    if len(cells) < MIN_POINTS:
        return None
    x = np.column_stack([np.ones(len(cells)), np.log([c.params for c in cells]), np.log([c.epochs for c in cells])])
    y = np.log([c.best_lr for c in cells])
    if np.linalg.matrix_rank(x) < 3:
        return None
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return float(coef[0]), float(coef[1]), float(coef[2]), r2, float(np.sqrt(np.mean(resid**2)) / math.log(2))


def monotonicity_breaks(cells: Sequence[CellBest]) -> list[Break]:
    by = {(c.model, c.epochs): c for c in cells}
    models = sorted({c.model for c in cells}, key=lambda m: next(c.params for c in cells if c.model == m))
    epochs = sorted({c.epochs for c in cells})
    out = []
    for i, m in enumerate(models):
        for j, e in enumerate(epochs):
            cell = by.get((m, e))
            if cell is None:
                continue
            for prev, along in ((by.get((m, epochs[j - 1])) if j else None, "epochs"),
                                (by.get((models[i - 1], e)) if i else None, "size")):
                if prev is not None and cell.best_lr > prev.best_lr * (1 + 1e-9):
                    out.append(Break(cell.name, cell.best_lr, prev.name, prev.best_lr, along))
    return out


def fit_lr_trend(cells: Sequence[CellBest], resampler: Resampler | None = None) -> LrTrend:
    point = _ols(cells)
    breaks = tuple(monotonicity_breaks(cells))
    edge = tuple(c.name for c in cells if c.lr_at_grid_edge)
    if point is None:
        status = FitStatus.TOO_FEW_POINTS if len(cells) < MIN_POINTS else FitStatus.DEGENERATE
        return LrTrend(status, n_points=len(cells), breaks=breaks, grid_edge=edge)
    c, p, q, r2, rmse = point
    fit = LrTrend(FitStatus.OK, c, p, q, r2, rmse, n_points=len(cells), breaks=breaks, grid_edge=edge,
                  intervals={"c": NO_INTERVAL, "p": NO_INTERVAL, "q": NO_INTERVAL})
    if resampler is None:
        return fit
    samples = tuple(s[:3] for s in resampler.collect(_ols))
    intervals = {k: percentile_interval([s[i] for s in samples]) for i, k in enumerate("cpq")}
    return LrTrend(**{**fit.__dict__, "intervals": intervals, "bootstrap": resampler.method,
                      "replicates": len(samples), "samples": samples})


def snap(lr: float, grid: Sequence[float]) -> float:
    """The grid LR nearest to `lr` in log space (the grid the study swept)."""
    return min(grid, key=lambda g: abs(math.log(g / lr)))
