"""The searcher contract every raysweep searcher implements, free of Ray.

A searcher proposes (cell, lr) trials and learns their outcomes. The Ray Tune adapter
(`raysweep.sweep.tune_searcher`) and the replay benchmark both drive searchers through this
contract only, which is what lets the benchmark replay a searcher without a cluster.

`suggest` returns a `Proposal`, `None` ("nothing to run until a running trial finishes") or
`FINISHED` ("every cell is settled"), mirroring Ray Tune's `Searcher`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from raysweep.core.records import TrialStatus
from raysweep.core.space import Cell, Lattice
from raysweep.search.early_stop import EarlyStop


class Finished:
    """The type of `FINISHED`, what `suggest` returns once every cell is settled (one instance)."""

    def __repr__(self) -> str:
        return "FINISHED"


FINISHED: Final = Finished()


@dataclass(frozen=True)
class Proposal:
    cell: Cell
    lr: float
    reason: str  # why this trial was chosen; lands in MLflow as the tag `raysweep.reason`
    attempt: int = 0  # 0 for the first run of (cell, lr); k for its k-th retry after a failure


@dataclass(frozen=True)
class Outcome:
    """What a searcher learns of a trial. ok: finished with a loss. diverged: the LR is too large,
    worse than any finished trial. failed: an exception, OOM, a worker group that did not start,
    preemption: nothing learned about the LR, so searchers propose the same (cell, lr) again (up to
    `max_retries` times, then it counts as diverged)."""

    val_loss: float  # +inf for diverged or failed trials
    status: TrialStatus = TrialStatus.OK

    def __post_init__(self) -> None:
        status = TrialStatus.parse(self.status)
        assert status in (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.FAILED), self.status
        object.__setattr__(self, "status", status)  # frozen: a plain "ok" becomes the enum, once

    @property
    def finished(self) -> bool:
        return self.status is TrialStatus.OK and math.isfinite(self.val_loss)


class CellSearcher(ABC):
    """Proposes learning rates for the cells of a lattice."""

    name: ClassVar[str]

    def __init__(self, lattice: Lattice) -> None:
        self.lattice = lattice

    @abstractmethod
    def suggest(self, trial_id: str) -> Proposal | None | Finished:
        """The next trial to run, None to ask again later, or FINISHED."""

    @abstractmethod
    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        """Learn the outcome of a trial `suggest` returned under `trial_id`."""

    def on_trial_result(self, trial_id: str, *, step: int, val_loss: float, flops: float,
                        total_steps: int) -> EarlyStop | None:
        """An evaluation point of a running trial (`step` of `total_steps`, `flops` spent so far).

        A searcher with early stopping (`search.early_stop`) returns the decision to stop the trial,
        already recorded: the trial is done for the searcher, and `on_trial_complete` is not called for
        it. Others learn nothing from a partial result and return None."""
        return None

    @abstractmethod
    def settled(self) -> dict[Cell, float]:
        """The settled optimal LR of each cell settled so far."""

    def blocked(self) -> dict[Cell, str]:
        """Settled cells whose search wanted an LR beyond the grid and could not try it: cell ->
        "high" (beyond lr.high) or "low" (below lr.low). Searchers that never step ({} here) say nothing."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """A JSON-able snapshot for resuming (searchers backed by Optuna storage may return {})."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore from `get_state`."""
