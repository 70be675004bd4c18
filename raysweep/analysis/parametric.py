"""The parametric scaling law L(N, D) = E + A / N^alpha + B / D^beta, fitted as the Chinchilla
replication (Besiroglu et al. 2024) says it must be.

- N is the model's parameter count; D the epoch budget in passes over the training split (the
  results table has no example count; examples = epochs x n_train, which rescales B by n_train^beta
  and leaves every exponent unchanged).
- The fit is on log loss: log L_hat = logsumexp(a - alpha log N, b - beta log D, e), with A = e^a,
  B = e^b, E = e^e, and the Huber loss (delta 1e-3) of log L_hat - log L, SUMMED over the points
  (averaging shrank the objective so far that the original fit stopped early).
- L-BFGS (scipy's L-BFGS-B; exponents kept in [0, 5]) from a grid of starting points; the best end
  point wins. Whether it converged is reported, not assumed.
- Intervals: the same fit on bootstrap replicates (seeds resampled), started from the best few end
  points of the full fit.
- The allocation it implies: minimising L at a fixed compute C = k N^gamma D gives N_opt ~ C^a_N
  and D_opt ~ C^a_D with a_N = beta / (alpha + gamma beta) and a_D = alpha / (alpha + gamma beta).
  gamma = 1 is the language-model convention C = 6 N D (Chinchilla's a = beta / (alpha + beta));
  a ConvNet's FLOPs per example do not grow in proportion to N, so the measured gamma is given too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.optimize import minimize

from raysweep.analysis.runs import CellBest
from raysweep.analysis.stats import NO_INTERVAL, FitStatus, Interval, Resampler, percentile_interval

HUBER_DELTA: Final = 1e-3  # Chinchilla's delta: on log loss, a residual past 0.1% counts linearly (robust)
MIN_POINTS: Final = 6  # five parameters, plus one degree of freedom
EXPONENT_BOUNDS: Final = (0.0, 5.0)  # a negative exponent would make more compute hurt; past 5 is a kink, not a law
LOG_BOUNDS: Final = (-30.0, 30.0)  # log A, log B, log E (of the normalised N, D): only to keep exp() finite
# The grid of starting points (on N and D normalised by their geometric means, so one grid serves
# any units): 4 x 4 exponents x 3 irreducible losses x 3 x 3 scales = 432 points. L-BFGS runs from
# the LBFGS_STARTS points of lowest objective (scipy's L-BFGS-B costs about 0.2 s a start here).
GRID_EXPONENTS: Final = (0.1, 0.4, 1.0, 2.0)
GRID_LOG_E: Final = (-3.0, -1.0, 0.0)
GRID_LOG_SCALE: Final = (-2.0, 0.0, 2.0)
LBFGS_STARTS: Final = 12
BOOTSTRAP_STARTS: Final = 1  # best distinct end points of the full fit that start each replicate
BOOTSTRAP_REPLICATES: Final = 100  # each replicate is a full L-BFGS run: the slowest part of the analysis
GTOL: Final = 1e-9  # a summed Huber objective of 20 points is about 1e-3 in size: scipy's default 1e-5 stops early
FTOL: Final = 1e-15


@dataclass(frozen=True)
class ChinchillaFit:
    status: FitStatus
    E: float = math.nan
    A: float = math.nan
    alpha: float = math.nan
    B: float = math.nan
    beta: float = math.nan
    objective: float = math.nan  # summed Huber loss at the optimum
    converged: bool = False  # L-BFGS met its tolerance at the best end point
    message: str = ""  # the optimiser's own words
    starts: int = 0  # L-BFGS runs (the best points of the grid)
    grid: int = 0  # grid points screened
    starts_converged: int = 0
    starts_at_best: int = 0  # starts that ended within 1e-6 (relative) of the best objective
    at_bounds: tuple[str, ...] = ()  # parameters that ended on a bound of the search box
    n_points: int = 0
    rmse_log: float = math.nan  # root mean square of the log-loss residuals
    intervals: dict[str, Interval] = field(default_factory=dict)
    bootstrap: str = ""
    replicates: int = 0
    samples: tuple[tuple[float, float, float, float, float], ...] = ()  # (E, A, alpha, B, beta) per replicate

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.OK

    def predict(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def predict_interval(self, n: float, d: float) -> Interval:
        return percentile_interval([e + a / n**al + b / d**be for e, a, al, b, be in self.samples])

    def allocation_exponents(self, gamma: float = 1.0) -> tuple[float, float]:
        """(a_N, a_D): N_opt ~ C^a_N and D_opt ~ C^a_D under C = k N^gamma D."""
        return _exponents(self.alpha, self.beta, gamma)

    def allocation_intervals(self, gamma: float = 1.0) -> tuple[Interval, Interval]:
        ex = [_exponents(al, be, gamma) for _, _, al, _, be in self.samples]
        return percentile_interval([x[0] for x in ex]), percentile_interval([x[1] for x in ex])

    def optimum(self, compute: float, k: float, gamma: float = 1.0) -> tuple[float, float]:
        """The (N, D) that minimises L(N, D) under k N^gamma D = compute."""
        return _optimum(self.A, self.alpha, self.B, self.beta, compute, k, gamma)

    def to_json(self, gamma: float = 1.0) -> dict[str, object]:
        a6, b6 = self.allocation_exponents(1.0) if self.ok else (math.nan, math.nan)
        ag, bg = self.allocation_exponents(gamma) if self.ok else (math.nan, math.nan)
        # a fit that is not a result (degenerate, not converged) implies no allocation, nor an interval on one
        i6 = self.allocation_intervals(1.0) if self.samples and self.ok else (NO_INTERVAL, NO_INTERVAL)
        ig = self.allocation_intervals(gamma) if self.samples and self.ok else (NO_INTERVAL, NO_INTERVAL)
        return {
            "status": str(self.status), "converged": self.converged, "message": self.message,
            "E": _num(self.E), "A": _num(self.A), "alpha": _num(self.alpha), "B": _num(self.B), "beta": _num(self.beta),
            "intervals": {k: v.to_json() for k, v in self.intervals.items()},
            "objective": _num(self.objective), "rmse_log": _num(self.rmse_log), "n_points": self.n_points,
            "grid": self.grid, "starts": self.starts, "starts_converged": self.starts_converged, "starts_at_best": self.starts_at_best,
            "at_bounds": list(self.at_bounds), "huber_delta": HUBER_DELTA, "units": {"N": "parameters", "D": "epochs"},
            "bootstrap": self.bootstrap, "replicates": self.replicates,
            "allocation_6ND": {"N_opt_exponent": _num(a6), "D_opt_exponent": _num(b6),
                               "N_opt_exponent_ci": i6[0].to_json(), "D_opt_exponent_ci": i6[1].to_json()},
            "allocation_measured_cost": {"gamma": _num(gamma), "N_opt_exponent": _num(ag), "D_opt_exponent": _num(bg),
                                         "N_opt_exponent_ci": ig[0].to_json(), "D_opt_exponent_ci": ig[1].to_json()},
        }


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _exponents(alpha: float, beta: float, gamma: float) -> tuple[float, float]:
    den = alpha + gamma * beta
    if den <= 0:
        return math.nan, math.nan
    return beta / den, alpha / den


def _optimum(A: float, alpha: float, B: float, beta: float, compute: float, k: float,
             gamma: float) -> tuple[float, float]:
    # d/dN [A N^-alpha + B (C / (k N^gamma))^-beta] = 0
    # => N^(alpha + gamma beta) = alpha A / (gamma beta B) * (C / k)^beta
    den = alpha + gamma * beta
    if den <= 0 or beta <= 0 or B <= 0 or A <= 0 or alpha <= 0:
        return math.nan, math.nan
    log_n = (math.log(alpha * A / (gamma * beta * B)) + beta * math.log(compute / k)) / den
    n = math.exp(log_n)
    return n, compute / (k * n**gamma)


# The objective -----------------------------------------------------------------------------------

def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray) -> tuple[float, np.ndarray]:
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    pred = top + np.log(total)
    w /= total
    r = pred - log_l
    small = np.abs(r) <= HUBER_DELTA
    loss = np.where(small, 0.5 * r**2, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)).sum()
    dr = np.where(small, r, HUBER_DELTA * np.sign(r))
    grad = np.array([
        (dr * w[0]).sum(),
        (dr * w[1]).sum(),
        (dr * w[2]).sum(),
        -(dr * w[0] * log_n).sum(),
        -(dr * w[1] * log_d).sum(),
    ])
    return float(loss), grad


_BOUNDS: Final = [LOG_BOUNDS, LOG_BOUNDS, LOG_BOUNDS, EXPONENT_BOUNDS, EXPONENT_BOUNDS]


def _lbfgs(start: np.ndarray, args: tuple[np.ndarray, ...]):  # type: ignore[no-untyped-def]
    return minimize(_objective, start, args=args, jac=True, method="L-BFGS-B", bounds=_BOUNDS,
                    options={"gtol": GTOL, "ftol": FTOL, "maxiter": 5000, "maxfun": 20000})


def _grid() -> list[np.ndarray]:
    return [np.array([a, b, e, al, be]) for al, be, e, a, b in
            itertools.product(GRID_EXPONENTS, GRID_EXPONENTS, GRID_LOG_E, GRID_LOG_SCALE, GRID_LOG_SCALE)]


@dataclass(frozen=True)
class _Data:
    log_n: np.ndarray
    log_d: np.ndarray
    log_l: np.ndarray
    n_ref: float
    d_ref: float

    @classmethod
    def of(cls, cells: Sequence[CellBest]) -> _Data:
        n = np.array([c.params for c in cells], float)
        d = np.array([c.epochs for c in cells], float)
        n_ref, d_ref = float(np.exp(np.log(n).mean())), float(np.exp(np.log(d).mean()))
        return cls(np.log(n / n_ref), np.log(d / d_ref), np.log([c.loss for c in cells]), n_ref, d_ref)

    @property
    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.log_n, self.log_d, self.log_l

    def params(self, theta: np.ndarray) -> tuple[float, float, float, float, float]:
        """(E, A, alpha, B, beta) in the original units of N and D."""
        a, b, e, alpha, beta = (float(x) for x in theta)
        return (math.exp(e), math.exp(a) * self.n_ref**alpha, alpha, math.exp(b) * self.d_ref**beta, beta)


def fit_chinchilla(cells: Sequence[CellBest], resampler: Resampler | None = None) -> ChinchillaFit:
    """Fit L(N, D) to the cells at their best LR (one point per cell)."""
    pts = [c for c in cells if c.loss > 0 and math.isfinite(c.loss)]
    if len(pts) < MIN_POINTS:
        return ChinchillaFit(FitStatus.TOO_FEW_POINTS, n_points=len(pts))
    if len({c.params for c in pts}) < 2 or len({c.epochs for c in pts}) < 2:
        return ChinchillaFit(FitStatus.DEGENERATE, n_points=len(pts))
    data = _Data.of(pts)
    grid = sorted(_grid(), key=lambda s: _objective(s, *data.args)[0])
    results = [_lbfgs(s, data.args) for s in grid[:LBFGS_STARTS]]
    results.sort(key=lambda r: r.fun)
    best = results[0]
    at_best = sum(r.fun <= best.fun * (1 + 1e-6) + 1e-15 for r in results)
    E, A, alpha, B, beta = data.params(best.x)
    names = ("log A", "log B", "log E", "alpha", "beta")
    at_bounds = tuple(n for n, x, (lo, hi) in zip(names, best.x, _BOUNDS, strict=True)
                      if min(x - lo, hi - x) < 1e-6)
    pred = np.log(E + A / np.exp(data.log_n + math.log(data.n_ref)) ** alpha
                  + B / np.exp(data.log_d + math.log(data.d_ref)) ** beta)
    rmse = float(np.sqrt(np.mean((pred - data.log_l) ** 2)))
    # A term whose scale or exponent ends on the box's edge has dropped out of the law (or become a
    # step): the allocation it implies would be an artefact of the box, not of the data.
    lost = set(at_bounds) & {"log A", "log B", "alpha", "beta"}
    status = (FitStatus.NOT_CONVERGED if not best.success else FitStatus.DEGENERATE if lost else FitStatus.OK)
    fit = ChinchillaFit(status=status, E=E, A=A, alpha=alpha, B=B, beta=beta, objective=float(best.fun),
                        converged=bool(best.success), message=str(best.message), starts=len(results), grid=len(grid),
                        starts_converged=sum(bool(r.success) for r in results), starts_at_best=at_best,
                        at_bounds=at_bounds, n_points=len(pts), rmse_log=rmse)
    if resampler is None:
        return fit
    seeds: list[np.ndarray] = []
    for r in results:  # the best few distinct end points start every replicate
        if all(np.max(np.abs(r.x - s)) > 1e-3 for s in seeds):
            seeds.append(r.x)
        if len(seeds) == BOOTSTRAP_STARTS:
            break

    def one(cells: list[CellBest]) -> tuple[float, float, float, float, float] | None:
        pts_b = [c for c in cells if c.loss > 0 and math.isfinite(c.loss)]
        if len(pts_b) < MIN_POINTS or len({c.params for c in pts_b}) < 2 or len({c.epochs for c in pts_b}) < 2:
            return None
        d = _Data.of(pts_b)
        # the start points live in the full data's normalisation: move them to this replicate's
        starts = [_renormalise(s, data, d) for s in seeds]
        r = min((_lbfgs(s, d.args) for s in starts), key=lambda r: r.fun)
        return d.params(r.x)

    samples = tuple(resampler.collect(one, limit=BOOTSTRAP_REPLICATES))
    intervals = {name: percentile_interval([s[i] for s in samples])
                 for i, name in enumerate(("E", "A", "alpha", "B", "beta"))}
    return ChinchillaFit(**{**fit.__dict__, "intervals": intervals, "bootstrap": resampler.method,
                            "replicates": len(samples), "samples": samples})


def _renormalise(theta: np.ndarray, old: _Data, new: _Data) -> np.ndarray:
    a, b, e, alpha, beta = theta
    # A = e^a n_ref^alpha is the same law in either normalisation
    a += alpha * (math.log(old.n_ref) - math.log(new.n_ref))
    b += beta * (math.log(old.d_ref) - math.log(new.d_ref))
    return np.clip(np.array([a, b, e, alpha, beta]), [lo for lo, _ in _BOUNDS], [hi for _, hi in _BOUNDS])
