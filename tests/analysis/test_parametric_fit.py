"""The parametric law L(N, D) = E + A/N^alpha + B/D^beta: a planted surface with noise and outliers
is recovered within stated tolerances, convergence is reported, and the implied allocation is the
true minimiser of the law under the compute constraint."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from raysweep.analysis.parametric import fit_chinchilla
from raysweep.analysis.runs import CellBest, ComputeAxis
from raysweep.analysis.stats import FitStatus, Resampler
from raysweep.analysis.testing import Surface, planted_runs

TRUE = Surface(E=0.3, A=40.0, alpha=0.45, B=0.8, beta=0.6)
# Tolerances: 1% multiplicative noise over 42 points and 3 outliers (+40%)
TOL_EXPONENT = 0.06  # absolute, on alpha and beta
TOL_E = 0.15  # relative, on E
TOL_PREDICT = 0.02  # relative, on the law's loss at a point inside the lattice


def planted_cells(noise: float = 0.01, outliers: int = 3, seed: int = 0) -> list[CellBest]:
    rng = np.random.default_rng(seed)
    cells = []
    for n in (1e4, 3e4, 1e5, 3e5, 1e6, 3e6):
        for d in (0.25, 0.5, 1, 2, 4, 8, 16):
            loss = TRUE.loss(n, d) * math.exp(rng.normal(0, noise))
            cells.append(CellBest(f"m{int(n)}", int(n), d, 0.1, loss, math.nan, 1, 6 * n * d, False))
    for i in rng.choice(len(cells), outliers, replace=False):
        c = cells[i]
        cells[i] = CellBest(c.model, c.params, c.epochs, c.best_lr, c.loss * 1.4, math.nan, 1, c.compute, False)
    return cells


def test_planted_surface_with_noise_and_outliers_is_recovered() -> None:
    fit = fit_chinchilla(planted_cells())
    assert fit.status is FitStatus.OK and fit.converged, fit.message
    assert fit.starts_converged >= 1 and fit.starts_at_best >= 1
    assert abs(fit.alpha - TRUE.alpha) < TOL_EXPONENT, fit
    assert abs(fit.beta - TRUE.beta) < TOL_EXPONENT, fit
    assert abs(fit.E - TRUE.E) / TRUE.E < TOL_E, fit
    for n, d in ((3e4, 1), (1e6, 4)):
        assert abs(fit.predict(n, d) - TRUE.loss(n, d)) / TRUE.loss(n, d) < TOL_PREDICT


def test_outliers_do_not_drag_a_huber_fit_but_would_drag_least_squares() -> None:
    clean = fit_chinchilla(planted_cells(outliers=0))
    dirty = fit_chinchilla(planted_cells(outliers=3))
    assert abs(dirty.alpha - clean.alpha) < 0.03 and abs(dirty.beta - clean.beta) < 0.03


def test_allocation_is_the_minimiser_under_the_compute_constraint() -> None:
    fit = fit_chinchilla(planted_cells(noise=0.0, outliers=0))
    k, gamma, compute = 6.0, 1.0, 1e12
    n_opt, d_opt = fit.optimum(compute, k, gamma)
    res = minimize_scalar(lambda log_n: fit.predict(math.exp(log_n), compute / (k * math.exp(log_n) ** gamma)),
                          bounds=(0, 40), method="bounded", options={"xatol": 1e-10})
    assert math.exp(res.x) == pytest.approx(n_opt, rel=1e-3)
    assert k * n_opt**gamma * d_opt == pytest.approx(compute)
    a, b = fit.allocation_exponents(1.0)
    assert a == pytest.approx(fit.beta / (fit.alpha + fit.beta)) and a + b == pytest.approx(1.0)
    # with the planted law, Chinchilla's exponent a = beta / (alpha + beta)
    assert a == pytest.approx(TRUE.beta / (TRUE.alpha + TRUE.beta), abs=0.03)


def test_bootstrap_intervals_cover_the_planted_exponents() -> None:
    runs = planted_runs(TRUE, params=(1e4, 3e4, 1e5, 3e5, 1e6), epochs=(0.25, 0.5, 1, 2, 4, 8, 16), seeds=3,
                        noise=0.01)
    fit = fit_chinchilla(runs.cells(), Resampler(runs, ComputeAxis.FLOPS, replicates=40))
    assert fit.bootstrap == "seeds" and fit.replicates >= 30
    for name in ("alpha", "beta"):
        iv = fit.intervals[name]
        assert iv.lo < iv.hi
        assert iv.lo - 0.03 <= getattr(TRUE, name) <= iv.hi + 0.03, (name, iv)
    assert fit.predict_interval(1e5, 2).contains(fit.predict(1e5, 2))


def test_too_few_points_and_degenerate_lattices_are_soft_failures() -> None:
    cells = planted_cells(outliers=0)
    assert fit_chinchilla(cells[:5]).status is FitStatus.TOO_FEW_POINTS
    one_size = [c for c in cells if c.params == cells[0].params]
    assert fit_chinchilla(one_size).status is FitStatus.DEGENERATE


def test_a_law_without_a_size_term_is_degenerate_not_ok() -> None:
    rng = np.random.default_rng(3)
    flat = [CellBest(f"m{n}", n, d, 0.1, (0.3 + 0.8 / d**0.6) * math.exp(rng.normal(0, 0.005)), math.nan, 1,
                     6 * n * d, False)
            for n in (10_000, 30_000, 100_000) for d in (0.5, 1, 2, 4)]
    fit = fit_chinchilla(flat)
    assert fit.status is FitStatus.DEGENERATE, fit
    assert set(fit.at_bounds) & {"log A", "alpha"}
    assert not fit.ok
