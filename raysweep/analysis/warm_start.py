"""The warm start's forecast, fitted on an earlier study's runs (`search.warm_start`).

`lr_trend.fit_lr_trend` fits log lr* = c + p log N + q log epochs to the earlier cells' best grid LRs;
`raysweep.core.warm.WarmStart` holds the fit and the box of sizes and budgets it saw.

`refine=True` first moves each best LR to the vertex of a parabola in log LR through it and its two
grid neighbours, where the cell tried both. Measured by replay (benchmarks/analysis/
warm_start_replay.txt) it helps when the earlier study was a full grid and hurts when it was a
monotone sweep (about 2 LRs per cell, so only some cells have a vertex): off by default.
"""

from __future__ import annotations

import dataclasses
import math

from raysweep.analysis.lr_trend import MIN_POINTS, fit_lr_trend
from raysweep.analysis.runs import CellBest, Runs
from raysweep.core.warm import WarmStart


class WarmStartError(ValueError):
    """The earlier study cannot give a trend (too few cells, or all at one size or budget)."""


def vertex(means: dict[float, float], best: float) -> float:
    """The optimum between grid points: the vertex of a parabola in log LR through `best` and its two
    neighbours in `means` (LR -> mean loss), kept within half a grid step of `best`; `best` itself
    when a neighbour is missing or diverged, or the parabola does not open upward."""
    lrs = sorted(means)
    i = lrs.index(best)
    if i == 0 or i == len(lrs) - 1:
        return best
    lo_lr, hi_lr = lrs[i - 1], lrs[i + 1]
    lo, mid, hi = means[lo_lr], means[best], means[hi_lr]
    # only equal log steps on both sides make a three-point parabola in grid steps
    if not (math.isfinite(lo) and math.isfinite(hi)) or not math.isclose(best / lo_lr, hi_lr / best, rel_tol=1e-6):
        return best
    curv = lo + hi - 2 * mid
    if curv <= 0:
        return best
    shift = max(-0.5, min(0.5, 0.5 * (lo - hi) / curv))  # in grid steps
    return best * (hi_lr / best) ** shift


def refined_cells(runs: Runs) -> list[CellBest]:
    """The study's cells with each best LR refined to its vertex where the cell measured one."""
    groups = runs.groups()
    out = []
    for cell in runs.cells():
        means = {lr: sum(r.val_loss for r in rs) / len(rs) for (m, e, lr), rs in groups.items()
                 if m == cell.model and e == cell.epochs}
        out.append(dataclasses.replace(cell, best_lr=vertex(means, cell.best_lr)))
    return out


def fit_warm_start(runs: Runs, source: str, *, refine: bool = False) -> WarmStart:
    """The earlier study's LR trend as a warm start; WarmStartError when it has no trend to give."""
    cells = refined_cells(runs) if refine else runs.cells()
    trend = fit_lr_trend(cells)
    if not trend.ok:
        sizes, budgets = len({c.model for c in cells}), len({c.epochs for c in cells})
        raise WarmStartError(
            f"{source} has {len(cells)} settled cells over {sizes} model size(s) and {budgets} epoch budget(s); "
            f"a trend needs at least {MIN_POINTS} cells over two or more sizes and two or more budgets")
    n = [float(c.params) for c in cells]
    e = [c.epochs for c in cells]
    return WarmStart(source, trend.c, trend.p, trend.q, (min(n), max(n)), (min(e), max(e)), len(cells))
