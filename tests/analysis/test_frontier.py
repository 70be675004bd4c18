"""The frontier: a hand-built set of cells with a known lower envelope and slope; the edge warning
fires when the frontier reaches the largest budget or rung, and is silent when it turns over inside."""

from __future__ import annotations

import dataclasses
import math

import pytest

from raysweep.analysis.frontier import (
    corner_note,
    edge_warnings,
    envelope_at,
    fit_allocation,
    fit_frontier,
    frontier_points,
)
from raysweep.analysis.runs import CellBest, ComputeAxis, Runs
from raysweep.analysis.stats import FitStatus, Resampler
from raysweep.analysis.testing import Surface, planted_runs


def cell(model: str, params: int, epochs: float, compute: float, loss: float) -> CellBest:
    return CellBest(model, params, epochs, 0.1, loss, math.nan, 1, compute, False)


def known_lattice() -> list[CellBest]:
    """Frontier: a@1 -> a@2 -> b@2 -> b@4 -> c@4 on loss = 10 * C^-0.25 exactly; every other cell above it."""
    law = lambda c: 10 * c ** -0.25
    on = [cell("a", 10, 1, 1e4, law(1e4)), cell("a", 10, 2, 2e4, law(2e4)), cell("b", 20, 2, 4e4, law(4e4)),
          cell("b", 20, 4, 8e4, law(8e4)), cell("c", 40, 4, 1.6e5, law(1.6e5))]
    off = [cell("a", 10, 4, 4e4, law(4e4) * 1.1),  # costs as much as b@2, worse
           cell("b", 20, 1, 2e4, law(2e4) * 1.05), cell("c", 40, 1, 4e4, law(4e4) * 1.3),
           cell("c", 40, 2, 8e4, law(8e4) * 1.01)]
    return on + off


def test_frontier_of_a_known_lattice() -> None:
    cells = known_lattice()
    assert [c.name for c in frontier_points(cells)] == ["a@1", "a@2", "b@2", "b@4", "c@4"]
    fit = fit_frontier(cells)
    assert fit.status is FitStatus.OK
    assert fit.slope == pytest.approx(-0.25)
    assert fit.intercept == pytest.approx(1.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.predict(1e6) == pytest.approx(10 * 1e6 ** -0.25)
    assert envelope_at(cells, 3e4) == pytest.approx(10 * 2e4 ** -0.25)
    assert envelope_at(cells, 10) == math.inf


def test_allocation_exponents_from_the_frontier() -> None:
    al = fit_allocation(known_lattice())
    # N doubles every 4x of compute along this frontier (10, 10, 20, 20, 40): exponent about 0.5
    assert al.params.slope == pytest.approx(0.5, abs=0.1)
    assert al.epochs.slope == pytest.approx(0.5, abs=0.1)


def test_too_few_frontier_points_is_a_soft_failure() -> None:
    cells = [cell("a", 10, 1, 1e4, 1.0), cell("a", 10, 2, 2e4, 0.9)]
    assert fit_frontier(cells).status is FitStatus.TOO_FEW_POINTS


def test_edge_warning_fires_at_largest_budget_and_rung_but_not_for_the_corner() -> None:
    # the frontier ends at the corner c@4; b@4 (a smaller rung at the largest budget) is an edge
    warnings = edge_warnings(known_lattice())
    assert [w.edge for w in warnings] == ["largest_budget"]
    budget = warnings[0]
    assert budget.cells == ("b@4",) and not budget.top
    assert "extend the epoch grid beyond 4" in budget.message
    assert "c@4" in (corner_note(known_lattice()) or "")
    # the largest rung below the largest budget is an edge too: c@2 on the frontier before c@4
    cells = [c if c.name != "c@2" else cell("c", 40, 2, 8e4, 10 * 8e4 ** -0.25 * 0.99) for c in known_lattice()]
    rung = next(w for w in edge_warnings(cells) if w.edge == "largest_rung")
    assert rung.cells == ("c@2",) and "add a rung above c" in rung.message


def test_edge_warning_silent_when_the_frontier_reaches_the_corner_from_inside() -> None:
    # each rung hands over before its longest budget (b@4 and c@2 are no better than b@2, as if
    # overfitting), and the largest rung joins only at the corner
    law = lambda c: 10 * c ** -0.25
    cells = [cell("a", 10, 1, 1e4, law(1e4)), cell("a", 10, 2, 2e4, law(2e4)), cell("a", 10, 4, 4e4, law(4e4) * 1.2),
             cell("b", 20, 1, 2e4, law(2e4) * 1.1), cell("b", 20, 2, 4e4, law(4e4)), cell("b", 20, 4, 8e4, law(4e4) * 1.05),
             cell("c", 40, 1, 4e4, law(4e4) * 1.3), cell("c", 40, 2, 8e4, law(4e4) * 1.01),
             cell("c", 40, 4, 1.6e5, law(1.6e5))]
    assert [c.name for c in frontier_points(cells)] == ["a@1", "a@2", "b@2", "c@4"]
    assert edge_warnings(cells) == []
    assert corner_note(cells) is not None


def test_edge_warning_silent_when_the_frontier_turns_over_inside_the_lattice() -> None:
    # b@2 is the best cell of all: longer budgets and the largest rung only get worse (overfitting)
    cells = [cell("a", 10, 1, 1e4, 1.0), cell("a", 10, 2, 2e4, 0.8), cell("a", 10, 4, 4e4, 0.85),
             cell("b", 20, 1, 2e4, 0.9), cell("b", 20, 2, 4e4, 0.6), cell("b", 20, 4, 8e4, 0.65),
             cell("c", 40, 1, 4e4, 0.95), cell("c", 40, 2, 8e4, 0.7), cell("c", 40, 4, 1.6e5, 0.66)]
    assert [c.name for c in frontier_points(cells)] == ["a@1", "a@2", "b@2"]
    assert edge_warnings(cells) == []
    assert corner_note(cells) is None


def test_bootstrap_interval_on_a_planted_study_covers_its_slope() -> None:
    runs = planted_runs(Surface(), seeds=4, noise=0.02)
    cells = runs.cells()
    fit = fit_frontier(cells, Resampler(runs, ComputeAxis.FLOPS, replicates=60))
    assert fit.bootstrap == "seeds" and fit.replicates == 60
    assert fit.slope_ci.lo <= fit.slope <= fit.slope_ci.hi
    assert fit.slope_ci.hi - fit.slope_ci.lo > 0


def test_bootstrap_draws_seeds_only_where_every_cell_has_them() -> None:
    # one seed a run, then a few cells run again with new seeds: drawing seeds would hold the other
    # cells fixed (an interval as narrow as those few cells' noise), so cells are drawn
    one = planted_runs(Surface(), seeds=1, noise=0.02)
    again = planted_runs(Surface(), seeds=3, noise=0.02, seed=1)

    def rerun(cells: list[CellBest]) -> Runs:  # `one` with seeds 1 and 2 added at these cells' best LR
        keys = {(c.model, c.epochs, c.best_lr) for c in cells}
        extra = tuple(dataclasses.replace(r, seed=str(int(r.seed) + 1)) for r in again.runs
                      if (r.model, r.epochs, r.lr) in keys and r.seed != "0")
        return dataclasses.replace(one, runs=one.runs + extra)

    some = rerun(one.cells()[-3:])
    assert one.has_seeds() is False and some.has_seeds() is False
    assert Resampler(some, ComputeAxis.FLOPS, replicates=10).method == "cells"
    some_cells = fit_frontier(some.cells(), Resampler(some, ComputeAxis.FLOPS, replicates=60))
    assert some_cells.bootstrap == "cells" and some_cells.slope_ci.hi - some_cells.slope_ci.lo > 0
    # new seeds at every cell's best LR only (the other LRs once): seeds are drawn
    every = rerun(one.cells())
    assert every.has_seeds() is True
    assert Resampler(every, ComputeAxis.FLOPS, replicates=10).method == "seeds"


def test_cells_take_the_best_seed_mean_lr_and_the_compute_axis() -> None:
    s = Surface()
    runs = planted_runs(s, seeds=2, noise=0.0)
    by = {c.name: c for c in runs.cells(ComputeAxis.CORE_HOURS)}
    c = by["m1@2"]
    grid = sorted({r.lr for r in runs.runs})
    assert c.best_lr == min(grid, key=lambda g: abs(math.log(g / s.best_lr(30_000, 2))))
    assert c.compute == pytest.approx(s.k * 30_000 * 2 * s.hours_per_flop)
    assert c.seeds == 2
