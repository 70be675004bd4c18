"""Planted studies for tests: runs drawn from a known law, so a fit can be checked against the truth.

The loss of a run is L(N, D) = E + A / N^alpha + B / D^beta at its best LR, raised by a parabola in
log LR around the planted optimum lr*(N, D) = exp(c) N^p D^q, times seed noise. Its cost is
k N^gamma x D (FLOPs) and, for core-hours, a fixed rate per FLOP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysweep.analysis.runs import Runs
from raysweep.results.rows import TrialRow, status_of, table_cells, write_table


@dataclass(frozen=True)
class Surface:
    E: float = 0.3
    A: float = 40.0
    alpha: float = 0.45
    B: float = 0.8
    beta: float = 0.6
    c: float = 0.0  # log lr* at N = 1, D = 1
    p: float = -0.15  # lr* ~ N^p
    q: float = -0.3  # lr* ~ D^q
    curvature: float = 0.05  # relative loss added per (natural log of lr / lr*)^2
    k: float = 6e4  # FLOPs per epoch = k N^gamma
    gamma: float = 1.0
    hours_per_flop: float = 1e-13
    penalty: float = 0.0  # a repetition penalty P N^kappa (epochs - 1)^rho: with P > 0 the loss turns over
    kappa: float = 0.5
    rho: float = 1.5

    def loss(self, n: float, d: float) -> float:
        return (self.E + self.A / n**self.alpha + self.B / d**self.beta
                + self.penalty * n**self.kappa * max(d - 1.0, 0.0) ** self.rho)

    def best_lr(self, n: float, d: float) -> float:
        return math.exp(self.c + self.p * math.log(n) + self.q * math.log(d))


def planted_runs(surface: Surface = Surface(), *, params: Sequence[int] = (10_000, 30_000, 100_000, 300_000),
                 epochs: Sequence[float] = (0.25, 0.5, 1, 2, 4, 8), lrs: Sequence[float] | None = None,
                 seeds: int = 3, noise: float = 0.01, seed: int = 0, name: str = "planted") -> Runs:
    """Every (model, budget, LR) of a lattice, `seeds` runs each, with multiplicative noise."""
    rng = np.random.default_rng(seed)
    grid = list(lrs) if lrs is not None else [0.025 * 2**i for i in range(8)]
    runs = []
    for i, n in enumerate(params):
        for d in epochs:
            star = surface.best_lr(n, d)
            for lr in grid:
                base = surface.loss(n, d) * (1 + surface.curvature * math.log(lr / star) ** 2)
                flops = surface.k * n**surface.gamma * d
                for s in range(seeds):
                    loss = base * math.exp(rng.normal(0, noise))
                    runs.append(TrialRow(model=f"m{i}", model_params=int(n), epochs=float(d), lr=lr, seed=str(s),
                                         status=status_of(loss), val_loss=loss, flops=flops,
                                         core_hours=flops * surface.hours_per_flop))
    return Runs(name=name, runs=tuple(runs), source="planted")


def write_csv(runs: Runs, path: Path) -> Path:
    """The runs as a results table with `raysweep table`'s columns."""
    write_table(str(path), (table_cells(r) for r in runs.runs))
    return path
