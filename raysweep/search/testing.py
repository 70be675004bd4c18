"""Planted loss surfaces for testing searchers: the optimum of every cell is known in advance.

A surface is a function (cell, lr) -> Outcome. Its loss is a parabola in the grid index around the
planted optimum index, on top of a base loss that falls with model size and budget; LRs at or
above a divergence index return a diverged outcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from raysweep.core.records import TrialStatus
from raysweep.core.space import Cell, Lattice
from raysweep.search.base import Outcome
from raysweep.search.simulate import Evaluate

LRS = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # LrSpec's default grid; 1.6 is index 6


def toy_lattice(n_models: int = 3, n_epochs: int = 4, lrs: tuple[float, ...] = LRS) -> Lattice:
    """A lattice of rungs `m0`, `m1`, ... and budgets 0.25, 0.5, 1, ... epochs."""
    return Lattice(
        models=tuple(f"m{i}" for i in range(n_models)),
        epochs=tuple(0.25 * 2**e for e in range(n_epochs)),
        lrs=lrs,
    )


def planted(
    lattice: Lattice,
    optimum: Mapping[Cell, int] | Callable[[Cell], int],
    *,
    diverge_from: int | Callable[[Cell], int | None] | None = None,
    curvature: float = 0.05,
) -> Evaluate:
    """A surface whose best grid index in each cell is `optimum` (a map or a function of the cell).

    `curvature=0` makes every LR tie. `diverge_from`: grid index at and above which trials diverge.
    """
    opt = optimum if callable(optimum) else optimum.__getitem__

    def evaluate(cell: Cell, lr: float) -> Outcome:
        i = lattice.lr_index(lr)
        limit = diverge_from(cell) if callable(diverge_from) else diverge_from
        if limit is not None and i >= limit:
            return Outcome(math.inf, TrialStatus.DIVERGED)
        base = 3.0 - 0.2 * cell.m - 0.1 * cell.e
        return Outcome(base + curvature * (i - opt(cell)) ** 2)

    return evaluate
