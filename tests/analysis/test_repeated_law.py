"""Laws for repeated data (raysweep.analysis.repeated): planted surfaces with and without a repetition
penalty, and with Muennighoff's saturating effective data, are recovered within stated tolerances;
today's law cannot turn over, the penalty form can."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysweep.analysis.repeated import effective_epochs, fit_repeated
from raysweep.analysis.runs import CellBest, ComputeAxis, Runs
from raysweep.analysis.stats import FitStatus, Resampler
from raysweep.results.rows import TrialRow, status_of

E, A, ALPHA, B, BETA = 0.3, 40.0, 0.45, 0.8, 0.6
KAPPA, RHO = 0.5, 1.5
P = 4e-6  # the largest model (1e6) turns over near 8 epochs, the smallest (1e4) near 25
SIZES = (1e4, 3e4, 1e5, 3e5, 1e6)
EPOCHS = (0.25, 0.5, 1, 2, 4, 8, 16, 32)
STARTS = 6  # L-BFGS starts (of the grid's best points): enough for these surfaces, and quick
# Tolerances, with 0.5% multiplicative noise over 40 cells
TOL_EXPONENT = 0.06  # absolute, on alpha and beta
TOL_E = 0.1  # relative
TOL_PENALTY = (0.1, 0.2)  # absolute, on kappa and rho
TOL_PREDICT = 0.015  # relative, at every cell of the lattice
TOL_TURN = 1.25  # factor, on the epochs at which a rung's loss turns over


def law(n: float, e: float, penalty: float = 0.0, r_star: float | None = None) -> float:
    d = float(effective_epochs(e, r_star)) if r_star else e
    return E + A / n**ALPHA + B / d**BETA + penalty * n**KAPPA * max(e - 1, 0) ** RHO


def cells(noise: float = 0.005, seed: int = 0, **kw: float) -> list[CellBest]:
    rng = np.random.default_rng(seed)
    return [CellBest(f"m{int(n)}", int(n), e, 0.1, law(n, e, **kw) * math.exp(rng.normal(0, noise)), math.nan, 1,
                     6 * n * e, False) for n in SIZES for e in EPOCHS]


def true_turn(n: float) -> float:
    grid = np.exp(np.linspace(math.log(0.01), math.log(1e6), 2001))
    return float(grid[int(np.argmin([law(n, e, penalty=P) for e in grid]))])


def test_a_planted_repetition_penalty_is_recovered() -> None:
    fit = fit_repeated(cells(penalty=P), "overfit", starts=STARTS)
    assert fit.status is FitStatus.OK and fit.converged, fit.message
    got = fit.params()
    assert abs(got["alpha"] - ALPHA) < TOL_EXPONENT and abs(got["beta"] - BETA) < TOL_EXPONENT, got
    assert abs(got["E"] - E) / E < TOL_E, got
    assert abs(got["kappa"] - KAPPA) < TOL_PENALTY[0] and abs(got["rho"] - RHO) < TOL_PENALTY[1], got
    for c in cells(noise=0.0, penalty=P):
        assert fit.predict(c.params, c.epochs) == pytest.approx(c.loss, rel=TOL_PREDICT), c.name
    for n in (1e4, 1e6):
        assert true_turn(n) / TOL_TURN < fit.best_epochs(n) < true_turn(n) * TOL_TURN, n
    # a larger model turns over sooner
    assert fit.best_epochs(1e6) < fit.best_epochs(1e5) < fit.best_epochs(1e4)


def test_todays_law_cannot_turn_over_on_the_same_surface() -> None:
    fit = fit_repeated(cells(penalty=P), "chinchilla", starts=STARTS)
    assert fit.best_epochs(1e6) > 1e5  # monotone: more passes always predicted better
    worst = max(abs(fit.predict(c.params, c.epochs) / c.loss - 1) for c in cells(noise=0.0, penalty=P))
    assert worst > 0.1  # and it misses the overfit cells by far


def test_a_law_without_penalty_is_fitted_with_none_inside_the_lattice() -> None:
    fit = fit_repeated(cells(), "overfit", starts=STARTS)
    assert fit.status is FitStatus.OK, fit
    got = fit.params()
    assert abs(got["alpha"] - ALPHA) < TOL_EXPONENT and abs(got["beta"] - BETA) < TOL_EXPONENT, got
    assert abs(got["E"] - E) / E < TOL_E, got  # the penalty does not stand in for the floor
    for n in SIZES:
        assert fit.best_epochs(n) > max(EPOCHS), n  # no turnover where nothing turned over
    corner = got["P"] * max(SIZES) ** got["kappa"] * (max(EPOCHS) - 1) ** got["rho"]
    assert corner < 0.02 * law(max(SIZES), max(EPOCHS))


def test_muennighoffs_saturating_data_is_recovered() -> None:
    r_star = 4.0
    fit = fit_repeated(cells(r_star=r_star), "data_constrained", starts=STARTS)
    assert fit.status is FitStatus.OK, fit
    got = fit.params()
    assert r_star / 1.3 < got["R*"] < r_star * 1.3, got
    assert abs(got["beta"] - BETA) < TOL_EXPONENT and abs(got["E"] - E) / E < TOL_E, got
    # saturates: past (1 + R*) U of effective data, more passes buy almost nothing
    assert fit.predict(1e5, 64) == pytest.approx(fit.predict(1e5, 128), rel=0.01)


def test_effective_epochs_counts_unique_then_repeated_passes() -> None:
    assert effective_epochs(0.5, 4.0) == pytest.approx(0.5)  # under one epoch: all unique
    assert effective_epochs(1.0, 4.0) == pytest.approx(1.0)
    assert effective_epochs(2.0, 1e6) == pytest.approx(2.0, rel=1e-5)  # R* large: every pass counts
    assert effective_epochs(1e4, 4.0) == pytest.approx(5.0)  # saturates at 1 + R*


def test_bootstrap_restarts_each_replicate_and_covers_the_truth() -> None:
    planted = cells(penalty=P)
    runs = Runs(name="pen", source="planted", runs=tuple(
        TrialRow(model=c.model, model_params=c.params, epochs=c.epochs, lr=0.1, seed="0", val_loss=c.loss,
                 status=status_of(c.loss), flops=c.compute, core_hours=c.compute * 1e-13) for c in planted))
    fit = fit_repeated(planted, "overfit", Resampler(runs, ComputeAxis.FLOPS, replicates=20), starts=STARTS,
                       replicates=20)
    assert fit.bootstrap == "cells" and fit.replicates >= 15
    for name, truth, slack in (("rho", RHO, 0.1), ("beta", BETA, 0.03)):
        iv = fit.intervals[name]
        assert iv.lo < iv.hi and iv.lo - slack <= truth <= iv.hi + slack, (name, iv)
    assert fit.predict_interval(1e6, 16).contains(fit.predict(1e6, 16))
    # a held-out refit started from this fit's end point (as benchmarks/repeated_law.py does)
    held = fit_repeated(planted[1:], "overfit", starts=1, init=fit)
    assert held.predict(planted[0].params, planted[0].epochs) == pytest.approx(planted[0].loss, rel=0.03)


def test_too_few_points_and_unknown_forms() -> None:
    assert fit_repeated(cells()[:8], "overfit").status is FitStatus.TOO_FEW_POINTS
    with pytest.raises(ValueError, match="expected a form"):
        fit_repeated(cells(), "chinchillaa")
