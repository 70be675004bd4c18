"""The warm start's fit on an earlier study: vertex refinement and the trend, on planted losses."""

from __future__ import annotations

import math

import pytest

from raysweep.analysis.runs import runs_from_rows
from raysweep.analysis.warm_start import WarmStartError, fit_warm_start, vertex
from raysweep.results.rows import TrialRow

GRID = [0.025 * 2**k for k in range(8)]


def planted(c: float, p: float, q: float, sizes: dict[str, int], budgets: list[float],
            lrs: list[float]) -> list[TrialRow]:
    """Loss = 1 + 0.1 (log2 lr - log2 lr*)^2, lr* = exp(c) N^p epochs^q: a parabola in log LR."""
    rows = []
    for model, n in sizes.items():
        for e in budgets:
            best = math.exp(c) * n**p * e**q
            for lr in lrs:
                rows.append(TrialRow(model=model, model_params=n, epochs=e, lr=lr, seed="0", status="ok",
                                     val_loss=1 + 0.1 * math.log2(lr / best) ** 2, flops=n * e))
    return rows


def test_vertex_finds_the_optimum_between_grid_points() -> None:
    best = 0.3
    means = {lr: 1 + 0.1 * math.log2(lr / best) ** 2 for lr in GRID}
    grid_best = min(means, key=means.__getitem__)
    assert vertex(means, grid_best) == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("means", [
    {0.1: 1.0, 0.2: 0.9},  # no neighbour above
    {0.1: 1.0, 0.2: 0.9, 0.4: math.inf},  # the neighbour diverged
    {0.1: 1.0, 0.2: 0.9, 0.8: 1.0},  # unequal steps
])
def test_vertex_keeps_the_grid_point_without_two_even_neighbours(means: dict[float, float]) -> None:
    assert vertex(means, 0.2) == 0.2


def test_the_fit_recovers_a_planted_trend_and_records_its_box() -> None:
    sizes = {"s": 10_000, "m": 30_000, "l": 90_000}
    rows = planted(math.log(8.0), -0.3, -0.2, sizes, [0.5, 1, 2, 4], GRID)
    runs = runs_from_rows(rows, name="earlier", source="planted")
    exact = fit_warm_start(runs, "earlier", refine=True)  # the vertex finds each optimum off the grid
    assert (exact.p, exact.q) == pytest.approx((-0.3, -0.2), abs=1e-6)
    assert exact.lr(30_000, 2) == pytest.approx(8.0 * 30_000**-0.3 * 2**-0.2, rel=1e-6)
    warm = fit_warm_start(runs, "earlier")  # the searcher's fit: best grid LRs, a staircase
    assert warm.params == (10_000, 90_000) and warm.epochs == (0.5, 4)
    assert (warm.p, warm.q) == pytest.approx((-0.3, -0.2), abs=0.15)
    for n in sizes.values():
        for e in (0.5, 1, 2, 4):  # within half a grid step (factor sqrt 2) of the planted optimum, plus fit slack
            assert abs(math.log2(warm.lr(n, e) / (8.0 * n**-0.3 * e**-0.2))) < 0.75


def test_a_monotone_sweeps_two_lrs_per_cell_still_give_a_trend() -> None:
    rows = [r for r in planted(math.log(8.0), -0.3, -0.2, {"s": 10_000, "l": 90_000}, [0.5, 2], GRID)
            if r.lr in (0.2, 0.4)]
    warm = fit_warm_start(runs_from_rows(rows, name="earlier", source="planted"), "earlier")
    assert warm.n_cells == 4  # each cell at its better grid LR: a least-squares plane through them
    for n in (10_000, 90_000):
        for e in (0.5, 2):
            assert 0.2 / 1.5 < warm.lr(n, e) < 0.4 * 1.5


@pytest.mark.parametrize("sizes,budgets", [({"s": 10_000}, [0.5, 1, 2, 4]), ({"s": 10_000, "l": 90_000}, [1])])
def test_a_study_along_one_axis_gives_no_trend(sizes: dict[str, int], budgets: list[float]) -> None:
    rows = planted(0.0, -0.3, -0.2, sizes, budgets, GRID)
    with pytest.raises(WarmStartError, match="two or more sizes and two or more budgets"):
        fit_warm_start(runs_from_rows(rows, name="earlier", source="planted"), "earlier")
