"""One study's whole analysis in one frozen result: cells, frontier, power law, allocation, the
parametric law, the LR trend, the cost model and the edge warnings; and `fit.json` from it.

`analyze(runs, axis)` is what `raysweep analyze` and `raysweep plan` call; the figures and the
report only format a `StudyFit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from raysweep.analysis.frontier import (
    AllocationFit,
    EdgeWarning,
    PowerLawFit,
    corner_note,
    edge_warnings,
    fit_allocation,
    fit_frontier,
    frontier_points,
    log_span,
)
from raysweep.analysis.lr_trend import LrTrend, fit_lr_trend
from raysweep.analysis.parametric import ChinchillaFit, fit_chinchilla
from raysweep.analysis.runs import TPU_V4_PEAK_FLOPS_PER_CORE, TPU_V4_UTILISATION, CellBest, ComputeAxis, Runs
from raysweep.analysis.stats import BOOTSTRAP_REPLICATES, Resampler, fit_line
from raysweep.analysis.verdict import Region, region


@dataclass(frozen=True)
class CostModel:
    """What one epoch of a model costs on the compute axis: measured per rung, and the power law
    cost/epoch = k N^gamma through the rungs (for sizes between and beyond them)."""

    per_epoch: dict[str, float]  # rung -> cost of one epoch
    k: float
    gamma: float

    def epoch_cost(self, n: float) -> float:
        return self.k * n**self.gamma

    def to_json(self) -> dict[str, Any]:
        return {"per_epoch": self.per_epoch, "k": self.k, "gamma": self.gamma,
                "model": "cost of one epoch = k * N^gamma (N in parameters)"}


def cost_model(cells: list[CellBest]) -> CostModel:
    per: dict[str, list[float]] = {}
    params: dict[str, int] = {}
    for c in cells:
        per.setdefault(c.model, []).append(c.compute / c.epochs)
        params[c.model] = c.params
    per_epoch = {m: float(np.exp(np.mean(np.log(v)))) for m, v in per.items()}
    line = fit_line([math.log(params[m]) for m in per_epoch], [math.log(v) for v in per_epoch.values()])
    if line is None:  # one rung (or rungs of one size): cost in proportion to N, as C = 6 N D assumes
        m = next(iter(per_epoch))
        return CostModel(per_epoch, per_epoch[m] / params[m], 1.0)
    return CostModel(per_epoch, math.exp(line.intercept), line.slope)


@dataclass(frozen=True)
class StudyFit:
    name: str
    source: str
    axis: ComputeAxis
    n_runs: int
    cells: tuple[CellBest, ...]
    models: tuple[str, ...]
    rung_params: dict[str, int]
    epochs: tuple[float, ...]
    lrs: tuple[float, ...]
    frontier: tuple[CellBest, ...]
    power_law: PowerLawFit
    allocation: AllocationFit
    chinchilla: ChinchillaFit
    lr_trend: LrTrend
    cost: CostModel
    warnings: tuple[EdgeWarning, ...]
    corner: str | None  # frontier.corner_note: the frontier ends at the lattice's corner
    seeds_per_run: float  # median seeds of a (model, budget, LR)
    lr_grid_recorded: bool = True  # the runs record lr.low/lr.high (else the grid's ends are the LRs run)

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.name, "source": self.source, "runs": self.n_runs,
            "compute_axis": {"name": str(self.axis), "label": self.axis.label,
                             "tpu_v4_peak_flops_per_core": TPU_V4_PEAK_FLOPS_PER_CORE,
                             "tpu_v4_utilisation": TPU_V4_UTILISATION},
            "lattice": {"models": {m: self.rung_params[m] for m in self.models}, "epochs": list(self.epochs),
                        "lrs": list(self.lrs), "seeds_per_run": self.seeds_per_run},
            "cells": [{"cell": c.name, "model": c.model, "params": c.params, "epochs": c.epochs, "best_lr": c.best_lr,
                       "loss": c.loss, "loss_se": _num(c.loss_se), "seeds": c.seeds, "compute": c.compute,
                       "on_frontier": c.name in {f.name for f in self.frontier}, "lr_at_grid_edge": c.lr_at_grid_edge,
                       "lr_at_grid_bound": c.lr_at_grid_bound or None}
                      for c in self.cells],
            "frontier": {**self.power_law.to_json(), "cells": [c.name for c in self.frontier],
                         "decades": log_span(self.frontier),
                         "law": "log10 loss = intercept + slope * log10 compute"},
            "allocation": self.allocation.to_json(),
            "parametric": self.chinchilla.to_json(self.cost.gamma),
            "lr_trend": self.lr_trend.to_json(),
            "cost_model": self.cost.to_json(),
            "edge_warnings": [{"edge": w.edge, "cells": list(w.cells), "top": w.top, "message": w.message}
                              for w in self.warnings],
            "corner_note": self.corner,
            "forecast_region": self.region().to_json(),
        }

    def region(self) -> Region:
        """Where `raysweep plan` forecasts, bounds or withholds a loss (raysweep.analysis.verdict)."""
        return region(self.chinchilla, [c.compute for c in self.cells], [c.epochs for c in self.cells],
                      [c.loss for c in self.cells])


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def analyze(runs: Runs, axis: ComputeAxis = ComputeAxis.FLOPS, *, replicates: int = BOOTSTRAP_REPLICATES,
            seed: int = 0) -> StudyFit:
    """Every fit of one study. `replicates=0` skips the bootstrap (no intervals; for quick checks)."""
    cells = runs.cells(axis)
    resampler = Resampler(runs, axis, replicates=replicates, seed=seed) if replicates > 0 else None
    seeds = [len(v) for v in runs.groups().values()]
    return StudyFit(
        name=runs.name, source=runs.source, axis=axis, n_runs=len(runs.runs), cells=tuple(cells),
        models=runs.models, rung_params=runs.rung_params, epochs=runs.epochs, lrs=runs.lrs,
        frontier=tuple(frontier_points(cells)),
        power_law=fit_frontier(cells, resampler),
        allocation=fit_allocation(cells, resampler),
        chinchilla=fit_chinchilla(cells, resampler),
        lr_trend=fit_lr_trend(cells, resampler),
        cost=cost_model(cells),
        warnings=tuple(edge_warnings(cells)),
        corner=corner_note(cells),
        seeds_per_run=float(np.median(seeds)),
        lr_grid_recorded=runs.lr_grid_recorded,
    )
