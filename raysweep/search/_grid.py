"""The `grid` searcher: every learning rate of the grid in every cell (the exhaustive baseline).

A failed point (not diverged: it says nothing about its LR) goes back into the queue, right after
the points already handed out, up to `max_retries` times; after that it counts as diverged.
"""

from __future__ import annotations

import collections
import math
from typing import Any

from raysweep.config import SearchSpec
from raysweep.core.records import TrialStatus
from raysweep.core.space import Cell, Lattice
from raysweep.search._prior import pick_best
from raysweep.search._study import MAX_RETRIES, check_max_retries, retry_reason
from raysweep.search.base import FINISHED, CellSearcher, Finished, Outcome, Proposal


class GridSearcher(CellSearcher):
    name = "grid"

    def __init__(
        self, lattice: Lattice, *, tie_tolerance: float = SearchSpec.tie_tolerance, max_retries: int = MAX_RETRIES
    ) -> None:
        super().__init__(lattice)
        self.tie_tolerance = tie_tolerance
        self.max_retries = check_max_retries(max_retries)
        self._queue = [(cell, lr) for cell in lattice.cells() for lr in lattice.lrs]
        self._next = 0
        self._pending: dict[str, tuple[Cell, float]] = {}
        self._results: dict[Cell, dict[float, float]] = {}
        self._failures: collections.Counter[tuple[Cell, float]] = collections.Counter()

    def suggest(self, trial_id: str) -> Proposal | None | Finished:
        if trial_id in self._pending:
            raise ValueError(f"trial id {trial_id!r} is already running; every suggest needs a new one")
        if self._next >= len(self._queue):
            return FINISHED if not self._pending else None
        cell, lr = self._queue[self._next]
        self._next += 1
        self._pending[trial_id] = (cell, lr)
        reason = f"grid: {lr:g} is point {self.lattice.lr_index(lr) + 1}/{len(self.lattice.lrs)}"
        n = self._failures[(cell, lr)]
        if n:
            reason = retry_reason(lr, n, self.max_retries, reason)
        return Proposal(cell, lr, reason, attempt=n)

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        cell, lr = self._pending.pop(trial_id)
        if outcome.status is TrialStatus.FAILED:
            self._failures[(cell, lr)] += 1
            if self._failures[(cell, lr)] <= self.max_retries:
                self._queue.insert(self._next, (cell, lr))  # next in line
                return
        loss = outcome.val_loss if outcome.finished else math.inf  # diverged, or out of retries
        self._results.setdefault(cell, {})[lr] = loss

    def settled(self) -> dict[Cell, float]:
        out = {}
        for cell, by_lr in self._results.items():
            if len(by_lr) == len(self.lattice.lrs):
                out[cell] = pick_best(by_lr, self.tie_tolerance)  # ties go to the larger LR
        return out

    def get_state(self) -> dict[str, Any]:
        return {
            "queue": [[c.m, c.e, lr] for c, lr in self._queue[self._next :]],
            "results": [[c.m, c.e, lr, loss] for c, d in self._results.items() for lr, loss in d.items()],
            "failures": [[c.m, c.e, lr, n] for (c, lr), n in self._failures.items()],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if "queue" in state:
            self._queue = [(Cell(m, e), lr) for m, e, lr in state["queue"]]
            self._next = 0
        else:  # a state from before retries: the fixed queue and a position in it
            self._queue = [(cell, lr) for cell in self.lattice.cells() for lr in self.lattice.lrs]
            self._next = int(state["next"])
        self._results = {}
        for m, e, lr, loss in state["results"]:
            self._results.setdefault(Cell(m, e), {})[lr] = loss
        self._failures = collections.Counter(
            {(Cell(m, e), lr): n for m, e, lr, n in state.get("failures", [])}
        )
