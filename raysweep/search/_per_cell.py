"""The `tpe` and `random` baselines: Optuna's own samplers, each cell searched on its own.

Each cell has its own study (`<study_name>/<cell name>`), so TPE models one cell's loss against
its LR only and never ranks one cell's losses against another's. Cells are independent, so every
cell is ready at once; trials go out breadth-first (every cell's first trial before any second one)
so that a cell's later trials can learn from its earlier ones. A cell gets `trials_per_cell` trials
(at most the grid size) and settles on its best tried LR.

Samples are snapped to the LR grid and never repeat an LR the cell already has: a budget of two
trials is two distinct LRs. TPE starts with `trials_per_cell // 2` random trials (at least one)
instead of Optuna's 10, which a budget of a few trials per cell would never get past.

A failed trial (not diverged: it says nothing about its LR) uses no budget: its LR is proposed again
in its cell, before any new sample, up to `max_retries` times; after that it counts as diverged.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from raysweep.config import SearchSpec
from raysweep.core.records import StudyAttr, TrialStatus
from raysweep.core.space import Cell, Lattice
from raysweep.search._prior import pick_best
from raysweep.search._study import (
    MAX_RETRIES,
    check_max_retries,
    failed,
    lattice_attrs,
    loss_of,
    lr_distribution,
    nearest,
    open_storage,
    open_study,
    quiet_optuna,
    record,
    recover,
    retry_reason,
    trial_key,
)
from raysweep.search.base import FINISHED, CellSearcher, Finished, Outcome, Proposal


class GridSnapSampler(optuna.samplers.BaseSampler):
    """Wraps a sampler so that `lr` lands on the grid, on a point the study has not tried yet;
    or, while `force` is set, on that LR (a retry of a failed trial)."""

    def __init__(self, base: optuna.samplers.BaseSampler, lrs: tuple[float, ...]) -> None:
        self.base = base
        self.lrs = lrs
        self.force: float | None = None

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = self.base.sample_relative(study, trial, search_space)
        if "lr" in params:  # TPE samples relatively (multivariate) by default since Optuna 5
            params["lr"] = self._snap(study, params["lr"])
        return params

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        raw = self.base.sample_independent(study, trial, param_name, param_distribution)
        return self._snap(study, raw) if param_name == "lr" else raw

    def _snap(self, study: optuna.Study, raw: float) -> float:
        if self.force is not None:
            return self.force
        taken = {
            nearest(self.lrs, t.params["lr"])
            for t in study.get_trials(deepcopy=False)
            if "lr" in t.params and (t.state == TrialState.RUNNING or loss_of(t) is not None or failed(t))
        }
        return self.lrs[nearest(self.lrs, raw, exclude=taken)]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


class PerCellSearcher(CellSearcher):
    """One Optuna study per cell, each with its own sampler."""

    def __init__(
        self,
        lattice: Lattice,
        *,
        trials_per_cell: int = SearchSpec.trials_per_cell,
        seed: int = SearchSpec.seed,
        tie_tolerance: float = SearchSpec.tie_tolerance,
        max_retries: int = MAX_RETRIES,
        storage: str | None = None,
        study_name: str = "raysweep",
        **_: Any,
    ) -> None:
        super().__init__(lattice)
        if trials_per_cell < 1:
            raise ValueError(f"`trials_per_cell >= 1` must hold, but got trials_per_cell={trials_per_cell}")
        self.budget = min(trials_per_cell, len(lattice.lrs))
        self.tie_tolerance = tie_tolerance
        self.max_retries = check_max_retries(max_retries)
        self._order = list(lattice.cells())
        self._dist = lr_distribution(lattice.lrs)
        store = open_storage(storage)  # one storage (one connection) for every cell's study
        self.studies: dict[Cell, optuna.Study] = {}
        self._samplers: dict[Cell, GridSnapSampler] = {}
        self._results: dict[Cell, dict[float, float]] = {}  # lr -> loss (inf: diverged, out of retries)
        self._failures: dict[Cell, collections.Counter[float]] = {}  # lr -> failed trials
        self._pending: dict[Cell, int] = {}
        self.interrupted = 0
        for k, cell in enumerate(self._order):
            sampler = GridSnapSampler(self._base_sampler(seed * 100_003 + k), lattice.lrs)
            attrs = {
                StudyAttr.SEARCHER: self.name,
                StudyAttr.CELL: lattice.name(cell),
                StudyAttr.LATTICE: lattice_attrs(lattice),
                StudyAttr.TRIALS_PER_CELL: self.budget,
            }
            with quiet_optuna():  # one INFO line per cell would bury the sweep's own output
                study = open_study(store, f"{study_name}/{lattice.name(cell)}", sampler, attrs)
            self.interrupted += recover(study)
            self.studies[cell] = study
            self._samplers[cell] = sampler
            self._results[cell] = {}
            self._failures[cell] = collections.Counter()
            for t in study.get_trials(deepcopy=False):
                loss = loss_of(t)
                if "lr" not in t.params:
                    continue
                if loss is not None:
                    self._results[cell][t.params["lr"]] = loss
                elif failed(t):
                    self._failures[cell][t.params["lr"]] += 1
            for lr, n in self._failures[cell].items():
                if n > self.max_retries:
                    self._results[cell].setdefault(lr, math.inf)  # out of retries: counts as diverged
            self._pending[cell] = 0
        self._live: dict[str, tuple[Cell, optuna.Trial]] = {}

    def _base_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def suggest(self, trial_id: str) -> Proposal | None | Finished:
        if trial_id in self._live:
            raise ValueError(f"trial id {trial_id!r} is already running; every suggest needs a new one")
        open_cells = [c for c in self._order if len(self._results[c]) + self._pending[c] < self.budget]
        if not open_cells:
            return FINISHED if not self._live else None
        # breadth-first, and a cell with nothing running first, so each trial sees the most results
        cell = min(open_cells, key=lambda c: (len(self._results[c]) + self._pending[c], self._pending[c]))
        k = len(self._results[cell]) + self._pending[cell] + 1
        study, sampler = self.studies[cell], self._samplers[cell]
        retry = self._retry(cell)
        sampler.force = retry
        try:
            trial = study.ask()
            lr = trial.suggest_float("lr", self._dist.low, self._dist.high, log=True)
        finally:
            sampler.force = None
        reason = f"{self.name}: trial {k}/{self.budget} in {self.lattice.name(cell)} -> {lr:g}"
        if retry is not None:
            reason = retry_reason(lr, self._failures[cell][lr], self.max_retries, reason)
        trial.set_user_attr(StudyAttr.REASON, reason)
        trial.set_user_attr(StudyAttr.TRIAL_ID, trial_id)
        attempt = self._failures[cell][lr] if retry is not None else 0
        trial.set_user_attr(StudyAttr.TRIAL_KEY, trial_key(study.study_name.rsplit("/", 1)[0], self.lattice,
                                                   Proposal(cell, lr, reason, attempt=attempt)))
        self._pending[cell] += 1
        self._live[trial_id] = (cell, trial)
        return Proposal(cell, lr, reason, attempt=attempt)

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        if trial_id not in self._live:
            raise KeyError(f"trial id {trial_id!r} was not proposed by this searcher (or already completed)")
        cell, trial = self._live.pop(trial_id)
        record(self.studies[cell], trial, outcome)
        self._pending[cell] -= 1
        lr = trial.params["lr"]
        if outcome.status is TrialStatus.FAILED:
            self._failures[cell][lr] += 1
            if self._failures[cell][lr] <= self.max_retries:
                return  # proposed again by the next suggest for this cell
        self._results[cell][lr] = outcome.val_loss if outcome.finished else math.inf

    def _retry(self, cell: Cell) -> float | None:
        """A failed LR of `cell` with retries left and nothing running, or None."""
        running = {trial.params["lr"] for c, trial in self._live.values() if c == cell}
        for lr, n in self._failures[cell].items():
            if 0 < n <= self.max_retries and lr not in self._results[cell] and lr not in running:
                return lr
        return None

    def settled(self) -> dict[Cell, float]:
        return {
            cell: pick_best(res, self.tie_tolerance)
            for cell, res in self._results.items()
            if len(res) >= self.budget
        }


class TPESearcher(PerCellSearcher):
    name: ClassVar[str] = "tpe"

    def _base_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, self.budget // 2))


class RandomSearcher(PerCellSearcher):
    name: ClassVar[str] = "random"

    def _base_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)
