"""Scaling laws for repeated data, fitted beside L(N, D) = E + A/N^alpha + B/D^beta (parametric.py).

A study's budget D counts epochs: passes over a training split of U unique examples. Epochs past
the first repeat examples, so data is counted as U unique examples seen R = epochs - 1 more times
(a budget under one epoch has seen epochs x U unique examples and repeats none). Four forms:

- `chinchilla`: E + A/N^alpha + B/D^beta, D in epochs (today's law: every pass is worth a new one).
- `data_constrained` (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"):
  D' = U_D + U_D R* (1 - exp(-R/R*)) in place of D, U_D = min(epochs, 1) U. Repeated passes are worth
  less and less; the effective data saturates at (1 + R*) U. Monotone in epochs: it flattens the
  curve but cannot make a 16-epoch run worse than an 8-epoch one.
- `overfit`: E + A/N^alpha + B/D^beta + P N^kappa R^rho (R = epochs - 1 > 0; no term on the first
  pass). The last term is a repetition penalty that grows with the repeated passes (rho >= 0.5) and
  with the model's size (kappa >= 0: a larger model memorises sooner); at a fixed N the loss turns
  over at the epochs where the data term's fall meets the penalty's rise. This is the form that can
  express what the full-Fashion study shows. (Counted on epochs rather than R, with rho free to 0,
  the penalty is a second floor: a planted law without one was fitted as E -> 0, P -> 0.28.)
- `data_constrained_overfit`: both.

Muennighoff's counterpart for parameters (N' saturating past the size that U unique examples can
use) needs rungs well past that size; a ladder of four rungs within 7x of each other does not
identify it, and it is not fitted.

U cancels: with D in units of U, D' = min(e, 1) + R* (1 - exp(-(e - 1)/R*)) epochs-equivalent, and U
only rescales B (by U^beta) when D' is quoted in examples. `unique` is kept for that conversion.

The fit is parametric.py's, term for term: log L_hat = logsumexp of the terms' logs, the Huber loss
(delta 1e-3) of the log residuals summed, L-BFGS-B from the best points of a grid of starts (N and
epochs normalised by their geometric means), a convergence check, and a bootstrap that restarts each
replicate from the full fit's best end point.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.optimize import minimize

from raysweep.analysis.parametric import (
    BOOTSTRAP_REPLICATES,
    EXPONENT_BOUNDS,
    FTOL,
    GRID_EXPONENTS,
    GRID_LOG_E,
    GRID_LOG_SCALE,
    GTOL,
    HUBER_DELTA,
    LBFGS_STARTS,
    LOG_BOUNDS,
)
from raysweep.analysis.runs import CellBest
from raysweep.analysis.stats import FitStatus, Interval, Resampler, percentile_interval

FORMS: Final = ("chinchilla", "data_constrained", "overfit", "data_constrained_overfit")
LOG_RSTAR_BOUNDS: Final = (math.log(0.1), math.log(1000.0))  # R* in passes: past 1000 the saturation is not seen
KAPPA_BOUNDS: Final = (0.0, 3.0)
RHO_BOUNDS: Final = (0.5, 5.0)  # the penalty grows with repetitions; flatter, it is a second floor
NO_TERM: Final = -700.0  # the log of a term that is absent (exp(-700) is 0 next to any loss)
GRID_LOG_RSTAR: Final = (math.log(2.0), math.log(8.0), math.log(32.0))
GRID_LOG_P: Final = (-8.0, -4.0)  # the penalty at the geometric-mean N and epochs, relative to loss ~ 1
GRID_KAPPA: Final = (0.0, 1.0)
GRID_RHO: Final = (1.0, 3.0)
BASE: Final = ("log A", "log B", "log E", "alpha", "beta")


def _names(form: str) -> tuple[str, ...]:
    out = list(BASE)
    if form.startswith("data_constrained"):
        out.append("log R*")
    if form.endswith("overfit"):
        out += ["log P", "kappa", "rho"]
    return tuple(out)


def _bounds(form: str) -> list[tuple[float, float]]:
    box = {"log A": LOG_BOUNDS, "log B": LOG_BOUNDS, "log E": LOG_BOUNDS, "alpha": EXPONENT_BOUNDS,
           "beta": EXPONENT_BOUNDS, "log R*": LOG_RSTAR_BOUNDS, "log P": LOG_BOUNDS, "kappa": KAPPA_BOUNDS,
           "rho": RHO_BOUNDS}
    return [box[n] for n in _names(form)]


def effective_epochs(epochs: np.ndarray | float, r_star: float) -> np.ndarray:
    """D'/U: the unique part of the budget plus the repeated passes' diminishing worth."""
    e = np.asarray(epochs, float)
    x = np.maximum(e - 1.0, 0.0)
    return np.minimum(e, 1.0) + r_star * -np.expm1(-x / r_star)


@dataclass(frozen=True)
class _Data:
    log_n: np.ndarray  # log(N / n_ref)
    epochs: np.ndarray  # raw epochs (D' saturates in raw passes)
    log_l: np.ndarray
    n_ref: float
    d_ref: float

    @classmethod
    def of(cls, cells: Sequence[CellBest]) -> _Data:
        n = np.array([c.params for c in cells], float)
        d = np.array([c.epochs for c in cells], float)
        n_ref, d_ref = float(np.exp(np.log(n).mean())), float(np.exp(np.log(d).mean()))
        return cls(np.log(n / n_ref), d, np.log([c.loss for c in cells]), n_ref, d_ref)

    @classmethod
    def like(cls, fit: RepeatedFit) -> _Data:
        """Only the normalisation of a fit (for moving its parameters to another)."""
        empty = np.empty(0)
        return cls(empty, empty, empty, fit.n_ref, fit.d_ref)


def _terms(theta: np.ndarray, form: str, log_n: np.ndarray, epochs: np.ndarray,
           d_ref: float) -> tuple[np.ndarray, np.ndarray]:
    """(terms [K, n], d terms / d theta [K, n, P]) of log L_hat = logsumexp(terms)."""
    names = _names(form)
    k = 4 if form.endswith("overfit") else 3
    n, p = len(log_n), len(theta)
    terms = np.empty((k, n))
    jac = np.zeros((k, n, p))
    a, b, e, alpha, beta = theta[:5]
    log_e = np.log(epochs / d_ref)
    terms[0] = a - alpha * log_n
    jac[0, :, 0], jac[0, :, 3] = 1.0, -log_n
    if form.startswith("data_constrained"):
        r = theta[names.index("log R*")]
        rs = math.exp(r)
        x = np.maximum(epochs - 1.0, 0.0)
        deff = effective_epochs(epochs, rs)
        ex = np.exp(-x / rs)
        d_deff_dr = rs * ((1 - ex) - (x / rs) * ex)
        log_d = np.log(deff / d_ref)
        jac[1, :, names.index("log R*")] = -beta * d_deff_dr / deff
    else:
        log_d = log_e
    terms[1] = b - beta * log_d
    jac[1, :, 1], jac[1, :, 4] = 1.0, -log_d
    terms[2] = e
    jac[2, :, 2] = 1.0
    if k == 4:
        i = names.index("log P")
        lp, kappa, rho = theta[i:i + 3]
        rep = epochs > 1.0
        log_r = np.log(np.where(rep, epochs - 1.0, 1.0) / d_ref)  # repetitions R = epochs - 1
        terms[3] = np.where(rep, lp + kappa * log_n + rho * log_r, NO_TERM)
        jac[3, :, i], jac[3, :, i + 1], jac[3, :, i + 2] = rep, rep * log_n, rep * log_r
    return terms, jac


def _log_pred(theta: np.ndarray, form: str, log_n: np.ndarray, epochs: np.ndarray, d_ref: float) -> np.ndarray:
    terms, _ = _terms(theta, form, log_n, epochs, d_ref)
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).sum(axis=0))


def _objective(theta: np.ndarray, form: str, data: _Data) -> tuple[float, np.ndarray]:
    terms, jac = _terms(theta, form, data.log_n, data.epochs, data.d_ref)
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    pred = top + np.log(total)
    w /= total
    r = pred - data.log_l
    small = np.abs(r) <= HUBER_DELTA
    loss = np.where(small, 0.5 * r**2, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)).sum()
    dr = np.where(small, r, HUBER_DELTA * np.sign(r))
    grad = np.einsum("n,kn,knp->p", dr, w, jac)
    return float(loss), grad


def _grid(form: str) -> list[np.ndarray]:
    base = [[a, b, e, al, be] for al, be, e, a, b in
            itertools.product(GRID_EXPONENTS, GRID_EXPONENTS, GRID_LOG_E, GRID_LOG_SCALE, GRID_LOG_SCALE)]
    extra: list[list[float]] = [[]]
    if form.startswith("data_constrained"):
        extra = [x + [r] for x in extra for r in GRID_LOG_RSTAR]
    if form.endswith("overfit"):
        extra = [x + list(pkr) for x in extra for pkr in itertools.product(GRID_LOG_P, GRID_KAPPA, GRID_RHO)]
    return [np.array(s + x) for s in base for x in extra]


def _lbfgs(start: np.ndarray, form: str, data: _Data):  # type: ignore[no-untyped-def]
    return minimize(_objective, start, args=(form, data), jac=True, method="L-BFGS-B", bounds=_bounds(form),
                    options={"gtol": GTOL, "ftol": FTOL, "maxiter": 5000, "maxfun": 20000})


@dataclass(frozen=True)
class RepeatedFit:
    form: str
    status: FitStatus
    theta: tuple[float, ...] = ()  # in the fit's normalisation (n_ref, d_ref)
    n_ref: float = math.nan
    d_ref: float = math.nan
    unique: float = math.nan  # U, examples per epoch (for D' in examples); nan: not given
    objective: float = math.nan
    converged: bool = False
    message: str = ""
    starts: int = 0
    grid: int = 0
    starts_converged: int = 0
    starts_at_best: int = 0
    at_bounds: tuple[str, ...] = ()
    n_points: int = 0
    rmse_log: float = math.nan
    intervals: dict[str, Interval] = field(default_factory=dict)
    bootstrap: str = ""
    replicates: int = 0
    samples: tuple[tuple[float, ...], ...] = ()  # theta per replicate (normalised as theta)

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.OK

    def _predict(self, theta: Sequence[float], n: float, epochs: float) -> float:
        lp = _log_pred(np.asarray(theta, float), self.form, np.array([math.log(n / self.n_ref)]),
                       np.array([float(epochs)]), self.d_ref)
        return float(np.exp(lp[0]))

    def predict(self, n: float, epochs: float) -> float:
        return self._predict(self.theta, n, epochs) if self.theta else math.nan

    def predict_interval(self, n: float, epochs: float) -> Interval:
        return percentile_interval([self._predict(s, n, epochs) for s in self.samples])

    def params(self, theta: Sequence[float] | None = None) -> dict[str, float]:
        """The law's constants in the original units (N in parameters, D in epochs)."""
        t = dict(zip(_names(self.form), self.theta if theta is None else theta, strict=True))
        out = {"E": math.exp(t["log E"]), "A": math.exp(t["log A"]) * self.n_ref ** t["alpha"], "alpha": t["alpha"],
               "B": math.exp(t["log B"]) * self.d_ref ** t["beta"], "beta": t["beta"]}
        if "log R*" in t:
            out["R*"] = math.exp(t["log R*"])
        if "log P" in t:
            # P N^kappa R^rho in original units
            out["P"] = math.exp(t["log P"]) / (self.n_ref ** t["kappa"] * self.d_ref ** t["rho"])
            out["kappa"], out["rho"] = t["kappa"], t["rho"]
        return out

    def best_epochs(self, n: float, lo: float = 0.01, hi: float = 1e6) -> float:
        """The epochs that minimise the law at size n (hi where the law never turns over)."""
        grid = np.exp(np.linspace(math.log(lo), math.log(hi), 2001))
        lp = _log_pred(np.asarray(self.theta), self.form, np.full(len(grid), math.log(n / self.n_ref)), grid,
                       self.d_ref)
        return float(grid[int(np.argmin(lp))])

    def to_json(self) -> dict[str, object]:
        return {"form": self.form, "status": str(self.status), "converged": self.converged,
                "params": {k: _num(v) for k, v in self.params().items()} if self.theta else {},
                "intervals": {k: v.to_json() for k, v in self.intervals.items()},
                "objective": _num(self.objective), "rmse_log": _num(self.rmse_log), "n_points": self.n_points,
                "grid": self.grid, "starts": self.starts, "starts_converged": self.starts_converged,
                "starts_at_best": self.starts_at_best, "at_bounds": list(self.at_bounds), "huber_delta": HUBER_DELTA,
                "units": {"N": "parameters", "D": "epochs (passes over U unique examples)"},
                "unique_examples": _num(self.unique), "bootstrap": self.bootstrap, "replicates": self.replicates}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def fit_repeated(cells: Sequence[CellBest], form: str = "overfit", resampler: Resampler | None = None, *,
                 unique: float = math.nan, starts: int = LBFGS_STARTS, replicates: int = BOOTSTRAP_REPLICATES,
                 init: RepeatedFit | None = None) -> RepeatedFit:
    """Fit one form to the cells at their best LR (one point per cell). `init`: a fit of the same form
    (on other cells, e.g. all of them, for a held-out check) whose end point is one more start."""
    if form not in FORMS:
        raise ValueError(f"expected a form in {FORMS}, got {form!r}")
    names = _names(form)
    pts = [c for c in cells if c.loss > 0 and math.isfinite(c.loss)]
    if len(pts) < len(names) + 1:
        return RepeatedFit(form, FitStatus.TOO_FEW_POINTS, n_points=len(pts), unique=unique)
    if len({c.params for c in pts}) < 2 or len({c.epochs for c in pts}) < 2:
        return RepeatedFit(form, FitStatus.DEGENERATE, n_points=len(pts), unique=unique)
    data = _Data.of(pts)
    grid = _grid(form)
    screened = _screen(grid, form, data)
    first = [grid[i] for i in screened[:starts]]
    if init is not None and init.theta and init.form == form:
        first.append(_renormalise(np.array(init.theta), form, _Data.like(init), data))
    results = sorted((_lbfgs(s, form, data) for s in first), key=lambda r: r.fun)
    best = results[0]
    at_best = sum(r.fun <= best.fun * (1 + 1e-6) + 1e-15 for r in results)
    bounds = _bounds(form)
    at_bounds = tuple(n for n, x, (lo, hi) in zip(names, best.x, bounds, strict=True) if min(x - lo, hi - x) < 1e-6)
    rmse = float(np.sqrt(np.mean((_log_pred(best.x, form, data.log_n, data.epochs, data.d_ref) - data.log_l) ** 2)))
    # as in parametric.py: a size or data term on the box's edge has dropped out of the law. The penalty
    # and R* on their bounds are answers (no penalty; no saturation within the lattice), not failures.
    lost = set(at_bounds) & {"log A", "log B", "alpha", "beta"}
    status = FitStatus.NOT_CONVERGED if not best.success else FitStatus.DEGENERATE if lost else FitStatus.OK
    fit = RepeatedFit(form, status, tuple(float(x) for x in best.x), data.n_ref, data.d_ref, unique,
                      float(best.fun), bool(best.success), str(best.message), len(results), len(grid),
                      sum(bool(r.success) for r in results), at_best, at_bounds, len(pts), rmse)
    if resampler is None:
        return fit

    def one(sample: list[CellBest]) -> tuple[float, ...] | None:
        pts_b = [c for c in sample if c.loss > 0 and math.isfinite(c.loss)]
        if len(pts_b) < len(names) + 1 or len({c.params for c in pts_b}) < 2 or len({c.epochs for c in pts_b}) < 2:
            return None
        d = _Data.of(pts_b)
        r = _lbfgs(_renormalise(best.x, form, data, d), form, d)
        # back to the full fit's normalisation, so every sample predicts with (n_ref, d_ref) of the fit
        return tuple(float(x) for x in _renormalise(r.x, form, d, data, clip=False))

    samples = tuple(resampler.collect(one, limit=replicates))
    p_samples = [fit.params(s) for s in samples]
    intervals = {k: percentile_interval([p[k] for p in p_samples]) for k in fit.params()}
    return RepeatedFit(**{**fit.__dict__, "intervals": intervals, "bootstrap": resampler.method,
                          "replicates": len(samples), "samples": samples})


def _screen(grid: list[np.ndarray], form: str, data: _Data) -> list[int]:
    values = [_objective(s, form, data)[0] for s in grid]
    return sorted(range(len(grid)), key=values.__getitem__)


def _renormalise(theta: np.ndarray, form: str, old: _Data, new: _Data, *, clip: bool = True) -> np.ndarray:
    """The same law with N and epochs normalised by `new`'s references instead of `old`'s."""
    names = _names(form)
    t = np.array(theta, float)
    dn, dd = math.log(old.n_ref) - math.log(new.n_ref), math.log(old.d_ref) - math.log(new.d_ref)
    t[0] += t[3] * dn  # A (N/n_ref)^-alpha is the same law in either normalisation
    t[1] += t[4] * dd
    if "log P" in names:
        i = names.index("log P")
        t[i] -= t[i + 1] * dn + t[i + 2] * dd
    if not clip:
        return t
    b = _bounds(form)
    return np.clip(t, [lo for lo, _ in b], [hi for _, hi in b])
