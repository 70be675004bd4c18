"""trend mode's forecast: where a cell's optimum lies, from the settled cells before it.

The paper's finding 3 is a trend as well as a bound: the optimal LR falls with the epoch budget,
faster for larger models. Fitted here as log optimal LR linear in log epoch budget, one line per
model, over that model's settled cells with shorter budgets; a model with a single settled cell
borrows the slope of the nearest smaller model.

Settled optima are grid points, and a line through a staircase of grid points cannot see a slow
fall until it has happened. So each settled cell also gets a *continuous* estimate of its optimum
(in grid steps): the loss is taken as a parabola in log LR, whose curvature the first cell measures
(it always tries three neighbouring LRs); two neighbouring trials then place the vertex between
them. Without a curvature the estimate is the settled grid point.

Only ancestors of a cell are used (rung and budget both no larger): they settle before the cell is
ready and never change afterwards, so the forecast, and every trial it leads to, replays the same
on resume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from raysweep.core.space import Cell
from raysweep.search._prior import Prediction

# Fit the most recent points only: at small budgets the optimum sits flat at the start LR and then
# bends down, so older points understate the current slope.
WINDOW = 2


def curvature(tried: Mapping[int, float], winner: int) -> float | None:
    """The loss's second difference per grid step squared around `winner`, when both neighbours
    finished and the parabola opens upward; else None."""
    lo, mid, hi = tried.get(winner - 1), tried.get(winner), tried.get(winner + 1)
    if lo is None or mid is None or hi is None or not all(map(math.isfinite, (lo, mid, hi))):
        return None
    c = (lo + hi - 2 * mid) / 2
    return c if c > 0 else None


def estimate(
    tried: Mapping[int, float], winner: int, curv: float | None, prediction: Prediction | None
) -> tuple[float, bool]:
    """A settled cell's optimum in fractional grid steps (within half a step of its winner), and
    whether its trials measured it (a finished neighbour of the winner) rather than took the forecast."""
    sides = [(tried[n], n) for n in (winner - 1, winner + 1) if math.isfinite(tried.get(n, math.inf))]
    if not sides or not math.isfinite(tried[winner]):
        y = float(winner) if prediction is None else prediction.index
        return min(winner + 0.5, max(winner - 0.5, y)), False
    y = float(winner)
    if curv is not None:
        # parabola c (x - y)^2 through the winner and its better neighbour: the vertex sits off
        # their midpoint by the loss difference
        loss_n, n = min(sides)
        y = (winner + n) / 2 + (loss_n - tried[winner]) / (2 * curv * (winner - n))
    return min(winner + 0.5, max(winner - 0.5, y)), True


def predict(cell: Cell, estimates: Mapping[Cell, tuple[float, bool]], epochs: Sequence[float]) -> Prediction:
    """The forecast grid index (fractional) of `cell`'s optimum, from `estimates`: settled cell ->
    (fractional optimum, whether it was measured by two neighbouring trials rather than forecast).

    The forecast is the model's line at this budget, capped by the predecessors' estimates (the prior,
    in fractional steps); with too few points for a line, those estimates alone. It is *trusted*
    (may run alone) only when a predecessor was measured: a chain of unmeasured cells would follow
    its own forecast and never see the optimum move.
    """
    log_e = [math.log(e) for e in epochs]
    preds = [p for p in (Cell(cell.m - 1, cell.e), Cell(cell.m, cell.e - 1)) if p in estimates]
    cap = min(estimates[p][0] for p in preds)
    trusted = any(estimates[p][1] for p in preds)
    own = [(log_e[e], estimates[Cell(cell.m, e)][0]) for e in range(cell.e) if Cell(cell.m, e) in estimates]
    line = None
    if len(own) >= 2:
        slope, at = _fit(own[-WINDOW:], log_e[cell.e])
        line = (at, f"slope {slope:+.2f}/log-epoch over {len(own[-WINDOW:])} cells of this model")
    elif len(own) == 1:
        for m in range(cell.m - 1, -1, -1):
            pts = [(log_e[e], estimates[Cell(m, e)][0]) for e in range(cell.e + 1) if Cell(m, e) in estimates]
            if len(pts) >= 2:
                slope, _ = _fit(pts[-WINDOW:], log_e[cell.e])
                x0, y0 = own[0]
                line = (y0 + slope * (log_e[cell.e] - x0), f"slope {slope:+.2f}/log-epoch of rung {m}")
                break
    if line is None or line[0] > cap:
        return Prediction(cap, f"the predecessors' optimum (grid step {cap:.2f})", trusted)
    return Prediction(line[0], line[1], trusted)


def _fit(points: Sequence[tuple[float, float]], x: float) -> tuple[float, float]:
    """Least-squares line through `points`: (slope, value at x)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx > 0 else 0.0
    return slope, my + slope * (x - mx)
