"""The `grid` searcher: every learning rate of the grid in every cell (the exhaustive baseline)."""

from __future__ import annotations

import math
from typing import Any

from raysweep.search._prior import pick_best
from raysweep.search.base import FINISHED, CellSearcher, Outcome, Proposal, _Finished
from raysweep.space import Cell, Lattice


class GridSearcher(CellSearcher):
    name = "grid"

    def __init__(self, lattice: Lattice, *, tie_tolerance: float = 0.0) -> None:
        super().__init__(lattice)
        self.tie_tolerance = tie_tolerance
        self._queue = [(cell, lr) for cell in lattice.cells() for lr in lattice.lrs]
        self._next = 0
        self._pending: dict[str, tuple[Cell, float]] = {}
        self._results: dict[Cell, dict[float, float]] = {}

    def suggest(self, trial_id: str) -> Proposal | None | _Finished:
        if trial_id in self._pending:
            raise ValueError(f"trial id {trial_id!r} is already running; every suggest needs a new one")
        if self._next >= len(self._queue):
            return FINISHED if not self._pending else None
        cell, lr = self._queue[self._next]
        self._next += 1
        self._pending[trial_id] = (cell, lr)
        return Proposal(
            cell, lr, f"grid: {lr:g} is point {self.lattice.lr_index(lr) + 1}/{len(self.lattice.lrs)}"
        )

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        cell, lr = self._pending.pop(trial_id)
        loss = outcome.val_loss if outcome.finished else math.inf
        self._results.setdefault(cell, {})[lr] = loss

    def settled(self) -> dict[Cell, float]:
        out = {}
        for cell, by_lr in self._results.items():
            if len(by_lr) == len(self.lattice.lrs):
                out[cell] = pick_best(by_lr, self.tie_tolerance)  # ties go to the larger LR
        return out

    def get_state(self) -> dict[str, Any]:
        return {
            "next": self._next,
            "results": [[c.m, c.e, lr, loss] for c, d in self._results.items() for lr, loss in d.items()],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._next = int(state["next"])
        self._results = {}
        for m, e, lr, loss in state["results"]:
            self._results.setdefault(Cell(m, e), {})[lr] = loss
