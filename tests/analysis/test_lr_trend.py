"""The LR trend recovers a planted exponent, and flags the cells that break monotonicity."""

from __future__ import annotations

import math

import pytest

from raysweep.analysis.lr_trend import fit_lr_trend, monotonicity_breaks, snap
from raysweep.analysis.runs import CellBest
from raysweep.analysis.stats import FitStatus
from raysweep.analysis.testing import Surface, planted_runs


def test_planted_exponents_are_recovered_exactly_off_the_grid() -> None:
    cells = [CellBest(f"m{n}", n, d, math.exp(0.5 - 0.2 * math.log(n) - 0.35 * math.log(d)), 1.0, math.nan, 1,
                      n * d, False)
             for n in (1_000, 10_000, 100_000) for d in (0.5, 1, 2, 4)]
    fit = fit_lr_trend(cells)
    assert fit.status is FitStatus.OK
    assert (fit.c, fit.p, fit.q) == pytest.approx((0.5, -0.2, -0.35))
    assert fit.breaks == ()


def test_planted_exponent_recovered_through_a_fine_lr_grid() -> None:
    s = Surface(p=-0.15, q=-0.3)
    grid = [0.01 * 2 ** (i / 4) for i in range(40)]  # quarter-octave grid: snapping error <= 2^(1/8)
    runs = planted_runs(s, params=(1e3, 1e4, 1e5, 1e6), epochs=(0.25, 0.5, 1, 2, 4, 8, 16), lrs=grid, seeds=1,
                        noise=0.0)
    fit = fit_lr_trend(runs.cells())
    assert fit.p == pytest.approx(-0.15, abs=0.03)
    assert fit.q == pytest.approx(-0.3, abs=0.03)
    assert fit.predict(1e4, 2) == pytest.approx(s.best_lr(1e4, 2), rel=0.1)


def test_breaks_name_the_cell_and_its_predecessor() -> None:
    def c(m: str, n: int, e: float, lr: float) -> CellBest:
        return CellBest(m, n, e, lr, 1.0, math.nan, 1, n * e, False)

    cells = [c("a", 1, 1, 0.4), c("a", 1, 2, 0.8), c("b", 2, 1, 0.4), c("b", 2, 2, 0.2)]
    breaks = monotonicity_breaks(cells)
    assert [(b.cell, b.predecessor, b.along) for b in breaks] == [("a@2", "a@1", "epochs")]
    assert fit_lr_trend(cells).breaks == tuple(breaks)


def test_too_few_cells_is_a_soft_failure_and_snap_picks_the_nearest_grid_lr() -> None:
    cells = [CellBest("a", 1, 1, 0.4, 1.0, math.nan, 1, 1, False)]
    assert fit_lr_trend(cells).status is FitStatus.TOO_FEW_POINTS
    assert snap(0.3, [0.1, 0.2, 0.4]) == 0.4 and snap(0.25, [0.1, 0.2, 0.4]) == 0.2
