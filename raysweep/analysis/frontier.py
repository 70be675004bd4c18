"""The compute-efficient frontier (the paper's Figure 2) and the power law it follows (finding 1).

Each cell at its best LR is one point (compute of one run, seed-mean loss). The frontier is their
lower envelope: a cell is on it when no cheaper-or-equal cell reaches a loss as low. The power law
is a straight line through the frontier in log-log axes, log10 L = intercept + slope log10 C, with
bootstrap intervals. The frontier's cells also say how the optimal model size and epoch budget
grow with compute (finding 2): N_opt ~ C^a and epochs_opt ~ C^b, fitted the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from raysweep.analysis.runs import CellBest
from raysweep.analysis.stats import NO_INTERVAL, FitStatus, Interval, Resampler, fit_line, percentile_interval

MIN_POINTS: Final = 3  # a line through two points has no R^2 worth reporting


def frontier_points(cells: Sequence[CellBest]) -> list[CellBest]:
    """The lower envelope of loss over compute, cheapest first (duplicates of a cell collapse)."""
    ordered = sorted({c.name: c for c in cells if math.isfinite(c.compute)}.values(), key=lambda c: (c.compute, c.loss))
    out: list[CellBest] = []
    for c in ordered:
        if not out or c.loss < out[-1].loss:
            out.append(c)
    return out


@dataclass(frozen=True)
class PowerLawFit:
    """y = 10^intercept * C^slope over the frontier (log10 on both axes)."""

    status: FitStatus
    slope: float = math.nan
    intercept: float = math.nan
    r2: float = math.nan
    slope_ci: Interval = NO_INTERVAL
    intercept_ci: Interval = NO_INTERVAL
    n_points: int = 0
    bootstrap: str = ""  # what was resampled: seeds or cells
    replicates: int = 0  # replicates that gave a fit
    samples: tuple[tuple[float, float], ...] = ()  # (slope, intercept) per replicate

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.OK

    def predict(self, compute: float) -> float:
        return 10 ** (self.intercept + self.slope * math.log10(compute))

    def predict_interval(self, compute: float) -> Interval:
        return percentile_interval([10 ** (i + s * math.log10(compute)) for s, i in self.samples])

    def to_json(self) -> dict[str, object]:
        return {"status": str(self.status), "slope": _num(self.slope), "intercept": _num(self.intercept),
                "r2": _num(self.r2), "slope_ci": self.slope_ci.to_json(), "intercept_ci": self.intercept_ci.to_json(),
                "n_points": self.n_points, "bootstrap": self.bootstrap, "replicates": self.replicates}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _loglog(points: Sequence[CellBest], y_of) -> tuple[float, float, float] | None:  # type: ignore[no-untyped-def]
    if len(points) < MIN_POINTS:
        return None
    line = fit_line([math.log10(p.compute) for p in points], [math.log10(y_of(p)) for p in points])
    return None if line is None else (line.slope, line.intercept, line.r2)


def _power_law(point_fit: tuple[float, float, float] | None, n: int, resampler: Resampler | None,
               y_of) -> PowerLawFit:  # type: ignore[no-untyped-def]
    if point_fit is None:
        status = FitStatus.TOO_FEW_POINTS if n < MIN_POINTS else FitStatus.DEGENERATE
        return PowerLawFit(status=status, n_points=n)
    slope, intercept, r2 = point_fit
    if resampler is None:
        return PowerLawFit(FitStatus.OK, slope, intercept, r2, n_points=n)
    boots = resampler.collect(lambda cells: _loglog(frontier_points(cells), y_of))
    return PowerLawFit(FitStatus.OK, slope, intercept, r2,
                       slope_ci=percentile_interval([b[0] for b in boots]),
                       intercept_ci=percentile_interval([b[1] for b in boots]),
                       n_points=n, bootstrap=resampler.method, replicates=len(boots),
                       samples=tuple((b[0], b[1]) for b in boots))


def fit_frontier(cells: Sequence[CellBest], resampler: Resampler | None = None) -> PowerLawFit:
    """Loss against compute over the frontier."""
    points = frontier_points(cells)
    return _power_law(_loglog(points, lambda p: p.loss), len(points), resampler, lambda p: p.loss)


@dataclass(frozen=True)
class AllocationFit:
    """How the frontier's model size and epoch budget grow with compute (both from its cells)."""

    params: PowerLawFit  # N_opt ~ C^slope
    epochs: PowerLawFit  # epochs_opt ~ C^slope

    def to_json(self) -> dict[str, object]:
        return {"params": self.params.to_json(), "epochs": self.epochs.to_json()}


def fit_allocation(cells: Sequence[CellBest], resampler: Resampler | None = None) -> AllocationFit:
    points = frontier_points(cells)
    out = []
    for y_of in (lambda p: float(p.params), lambda p: p.epochs):
        out.append(_power_law(_loglog(points, y_of), len(points), resampler, y_of))
    return AllocationFit(params=out[0], epochs=out[1])


@dataclass(frozen=True)
class EdgeWarning:
    """The frontier touches an edge of the lattice, so its optimum may lie outside it."""

    edge: str  # "largest_budget" or "largest_rung"
    cells: tuple[str, ...]  # the frontier cells on that edge, cheapest first
    top: bool  # the frontier's cheapest-to-best end (its most expensive point) is among them
    message: str


def edge_warnings(cells: Sequence[CellBest]) -> list[EdgeWarning]:
    """Frontier cells at the largest epoch budget or on the largest rung, in plain words.

    At such a cell, the compute-optimal choice might be a longer budget (or a larger model) that
    the lattice did not run: the frontier there is a bound, not the optimum, and any fit through it
    extrapolates the lattice's edge. Silent when the frontier turns over inside the lattice.

    The lattice's corner (the largest rung at the largest budget) is left out: it is the most
    compute the study spent, every lattice has one, and it sits on the frontier whenever more compute
    still helps. A warning that fires on every study says nothing; `corner_note` says it instead.
    """
    frontier = frontier_points(cells)
    if not frontier:
        return []
    max_epochs = max(c.epochs for c in cells)
    largest = max(cells, key=lambda c: c.params)
    points = [p for p in frontier if not _is_corner(p, cells)]
    n_points, top = len(frontier), frontier[-1]
    out = []
    at_budget = [p for p in points if p.epochs == max_epochs]
    if at_budget:
        is_top = top in at_budget
        models = ", ".join(dict.fromkeys(p.model for p in at_budget))
        out.append(EdgeWarning(
            edge="largest_budget", cells=tuple(p.name for p in at_budget), top=is_top,
            message=(f"{len(at_budget)} of the frontier's {n_points} points "
                     f"({', '.join(p.name for p in at_budget)}) sit at the largest epoch budget, {max_epochs:g}, "
                     f"on a rung below the largest{', including its lowest-loss end' if is_top else ''}. "
                     f"The optimum may lie at a longer budget: extend the epoch grid beyond {max_epochs:g} (e.g. "
                     f"{2 * max_epochs:g} and {4 * max_epochs:g}) for {models} before trusting the frontier's top "
                     f"or the fitted optimal epoch budget."),
        ))
    at_rung = [p for p in points if p.model == largest.model]
    if at_rung:
        is_top = top in at_rung
        out.append(EdgeWarning(
            edge="largest_rung", cells=tuple(p.name for p in at_rung), top=is_top,
            message=(f"{len(at_rung)} of the frontier's {n_points} points "
                     f"({', '.join(p.name for p in at_rung)}) use the largest rung, {largest.model} "
                     f"({largest.params:,} parameters), below the largest budget"
                     f"{', including its lowest-loss end' if is_top else ''}. "
                     f"A larger model may be optimal there: add a rung above {largest.model} before trusting "
                     f"the frontier's top or the fitted optimal model size."),
        ))
    return out


def corner_note(cells: Sequence[CellBest]) -> str | None:
    """When the frontier ends at the lattice's corner: what that does and does not say."""
    points = frontier_points(cells)
    if not points or not _is_corner(points[-1], cells):
        return None
    top = points[-1]
    return (f"The frontier ends at the lattice's corner, {top.name}: the most compute the study spent gave its "
            f"lowest loss, so more compute still helps. At that compute the lattice holds no other allocation "
            f"(no larger rung at a shorter budget, no smaller one at a longer budget): read the last point as "
            f"the loss that compute buys with this allocation, not as proof that the allocation is optimal.")


def _is_corner(cell: CellBest, cells: Sequence[CellBest]) -> bool:
    """Whether `cell` is the lattice's corner: the largest rung at the largest budget."""
    largest = max(cells, key=lambda c: c.params)
    return (cell.model, cell.epochs) == (largest.model, max(c.epochs for c in cells))


def envelope_at(cells: Sequence[CellBest], compute: float) -> float:
    """The lowest loss any cell reached for at most `compute` (inf when none is that cheap)."""
    losses = [c.loss for c in cells if c.compute <= compute * (1 + 1e-9)]
    return min(losses) if losses else math.inf


def log_span(points: Sequence[CellBest]) -> float:
    """Decades of compute the points span."""
    if len(points) < 2:
        return 0.0
    cs = np.array([p.compute for p in points])
    return float(np.log10(cs.max() / cs.min()))
