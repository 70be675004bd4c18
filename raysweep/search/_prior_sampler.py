"""The monotone prior as an Optuna sampler, and the searchers that drive it: monotone, bracket, verify, trend.

`PriorSampler` holds the prior (`_prior.PriorRule`): it reads the study's trials, works out which
cells are settled and which are ready (every predecessor settled), and proposes the next (cell, lr)
of the first ready cell along the wavefront. Its state is the study itself, so a sampler created
anew over a stored study (Optuna does not persist samplers) carries on where the last one stopped.

`PriorSearcher` is the `CellSearcher` over it: `suggest` asks the study for a trial whose `cell` and
`lr` params the sampler fills in; `on_trial_complete` tells the study the outcome.

A failed trial (not diverged: it says nothing about its LR) is left out of its cell's results, so
the rule proposes the same (cell, lr) again, up to `max_retries` times; after that it counts as
diverged (inf), so every reported outcome moves the search on and it always reaches FINISHED.
`max_retries` is a policy, not part of the search: a resumed study may use another one, and the
failures already stored count toward it.
"""

from __future__ import annotations

import collections
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from raysweep.config import LrSpec, SearchSpec
from raysweep.core.records import StudyAttr
from raysweep.core.space import Cell, Lattice
from raysweep.core.warm import ATTR as WARM_ATTR
from raysweep.core.warm import WarmPlan
from raysweep.search import _trend
from raysweep.search import early_stop as es
from raysweep.search._prior import Bound, Edge, Mode, Prediction, PriorRule, Propose, Settle, Step
from raysweep.search._study import (
    MAX_RETRIES,
    check_max_retries,
    early_stopped,
    failed,
    lattice_attrs,
    loss_of,
    lr_distribution,
    open_storage,
    open_study,
    record,
    record_early_stop,
    recover,
    retry_reason,
    trial_key,
)
from raysweep.search.base import FINISHED, CellSearcher, Finished, Outcome, Proposal
from raysweep.search.early_stop import EarlyStop


@dataclass
class CellView:
    """What the study says about one cell."""

    tried: dict[int, float] = field(default_factory=dict)  # grid index -> loss (inf: diverged, or
    # failed more than max_retries times)
    pending: set[int] = field(default_factory=set)  # grid indices still running
    failures: collections.Counter[int] = field(default_factory=collections.Counter)  # index -> failed trials
    step: Step | None = None  # None while a predecessor is unsettled
    blocked: Edge | None = None  # settled at an end of the grid it wanted to step beyond (PriorRule.blocked)


class PriorSampler(optuna.samplers.BaseSampler):
    """Samples `cell` and `lr` from the prior; any other parameter is an error."""

    def __init__(self, lattice: Lattice, rule: PriorRule, max_retries: int = MAX_RETRIES) -> None:
        self.lattice = lattice
        self.rule = rule
        self.max_retries = check_max_retries(max_retries)
        # an earlier study's forecast per cell, replacing the bounds (search.warm_start); set by the
        # searcher once the study is open, since a resumed study keeps the plan it was created with
        self.warm: WarmPlan | None = None
        self._by_name = {lattice.name(c): c for c in lattice.cells()}
        # the wavefront: cells by anti-diagonal, so the longest remaining chains start first
        self._order = sorted(lattice.cells(), key=lambda c: (c.m + c.e, c.m))
        self._planned: Proposal | None = None
        self._current: dict[int, Proposal] = {}  # optuna trial id -> its proposal
        # The last derivation, valid until this sampler sees the study change (a trial asked,
        # sampled or told): one driver owns a study, so reading storage once per change is enough.
        self._cache: tuple[int, tuple[dict[Cell, CellView], dict[Cell, int]]] | None = None

    def derive(self, study: optuna.Study) -> tuple[dict[Cell, CellView], dict[Cell, int]]:
        """Every cell's trials and next step, and the settled grid index of each settled cell."""
        if self._cache is None or self._cache[0] != id(study):
            self._cache = (id(study), self._derive(study))
        return self._cache[1]

    def _derive(self, study: optuna.Study) -> tuple[dict[Cell, CellView], dict[Cell, int]]:
        views = {cell: CellView() for cell in self.lattice.cells()}
        for trial in study.get_trials(deepcopy=False):
            if "cell" not in trial.params or "lr" not in trial.params:
                continue  # the trial being created right now
            view = views[self._cell_of(trial)]
            index = self.lattice.lr_index(trial.params["lr"])
            loss = loss_of(trial)
            if trial.state == optuna.trial.TrialState.RUNNING:
                view.pending.add(index)
            elif loss is not None:
                view.tried[index] = loss
            elif failed(trial):
                view.failures[index] += 1
        for view in views.values():
            for index, n in view.failures.items():
                if n > self.max_retries and index not in view.tried and index not in view.pending:
                    view.tried[index] = math.inf  # out of retries: counts as diverged
        settled: dict[Cell, int] = {}
        estimates: dict[Cell, tuple[float, bool]] = {}  # trend mode: (fractional optimum, measured)
        curv: float | None = None  # trend mode: the loss's curvature in grid steps, from the first cell
        for cell in self._order:
            view = views[cell]
            if self.warm is not None:  # every cell starts from the earlier study's forecast, at once
                view.step = self._warm_step(cell, view)
                if isinstance(view.step, Settle):
                    settled[cell] = view.step.index
                    view.blocked = self.rule.blocked(None, view.tried, self._warm_prediction(cell))
                continue
            preds = self.lattice.predecessors(cell)
            if any(p not in settled for p in preds):
                continue
            bound = None
            if preds:
                src = min(preds, key=lambda p: settled[p])  # (m-1, e) first on a tie
                bound = Bound(settled[src], self.lattice.name(src), clipped=views[src].blocked == "high")
            prediction = None
            if self.rule.mode == "trend" and preds:
                prediction = _trend.predict(cell, estimates, self.lattice.epochs)
            view.step = self.rule.step(bound, view.tried, view.pending, prediction)
            if isinstance(view.step, Settle):
                won = settled[cell] = view.step.index
                view.blocked = self.rule.blocked(bound, view.tried, prediction)
                if self.rule.mode == "trend":
                    if not preds:
                        curv = _trend.curvature(view.tried, won)
                    estimates[cell] = _trend.estimate(view.tried, won, curv, prediction)
        return views, settled

    def _warm_prediction(self, cell: Cell) -> Prediction:
        assert self.warm is not None
        name = self.lattice.name(cell)
        held = " (held at the earlier study's edge)" if name in self.warm.held else ""
        return Prediction(self.warm.index(name, self.rule.lrs), f"the trend of {self.warm.source}{held}", warm=True,
                          toward=self.warm.line_index(name, self.rule.lrs))

    def _warm_step(self, cell: Cell, view: CellView) -> Step:
        prediction = self._warm_prediction(cell)
        x = prediction.index
        nearest = min(len(self.rule.lrs) - 1, max(0, round(x)))
        return self.rule.step(Bound(nearest, "warm start"), view.tried, view.pending, prediction)

    def plan(self, study: optuna.Study) -> Proposal | None | Finished:
        """The next trial along the wavefront, None while nothing is ready, FINISHED when all settled."""
        views, settled = self.derive(study)
        self._planned = None
        for cell in self._order:
            step = views[cell].step
            if isinstance(step, Propose):
                lr, reason = self.rule.lrs[step.index], step.reason
                n = views[cell].failures[step.index]
                if n:  # proposed again after failing (never more than max_retries times: see _derive)
                    reason = retry_reason(lr, n, self.max_retries, reason)
                self._planned = Proposal(cell, lr, reason, attempt=n)
                return self._planned
        return FINISHED if len(settled) == self.lattice.n_cells() else None

    def _cell_of(self, trial: FrozenTrial) -> Cell:
        name = trial.params["cell"]
        if name not in self._by_name:
            raise ValueError(f"trial {trial.number} is for cell {name!r}, which is not in the lattice")
        return self._by_name[name]

    # Optuna's sampler interface

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._cache = None
        proposal = self._planned if self._planned is not None else self.plan(study)
        self._planned = None
        if not isinstance(proposal, Proposal):  # a driver that asks without a plan: a bug, not bad input
            raise RuntimeError(f"the prior has no trial to propose now (plan: {proposal!r})")  # noqa: TRY004
        self._current[trial._trial_id] = proposal
        # written here, by the sampler, so the study explains itself however it is driven
        study._storage.set_trial_user_attr(trial._trial_id, StudyAttr.REASON, proposal.reason)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        self._cache = None
        proposal = self._current[trial._trial_id]
        if param_name == "cell":
            return self.lattice.name(proposal.cell)
        if param_name == "lr":
            return proposal.lr
        raise ValueError(f"the prior samples only `cell` and `lr`, but got {param_name!r}")

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Sequence[float] | None
    ) -> None:
        self._current.pop(trial._trial_id, None)
        self._planned = None
        self._cache = None


class PriorSearcher(CellSearcher):
    """A `CellSearcher` over `PriorSampler`; subclasses fix the mode."""

    mode: ClassVar[Mode]

    def __init__(
        self,
        lattice: Lattice,
        *,
        start_lr: float = LrSpec.base,
        slowness: int = SearchSpec.slowness,
        tie_tolerance: float = SearchSpec.tie_tolerance,
        max_retries: int = MAX_RETRIES,
        storage: str | None = None,
        study_name: str = "raysweep",
        warm_start: WarmPlan | None = None,
        early_stop: str | float | None = None,
        **_: Any,
    ) -> None:
        super().__init__(lattice)
        # search.early_stop's margin ('auto' or a number); None: off. A policy, not part of the search:
        # a resumed study may use another one, and the stops already recorded stand.
        self.early_stop_margin = None if early_stop is None else es.margin_of(early_stop)
        try:
            start = lattice.lr_index(start_lr)
        except KeyError:
            raise ValueError(
                f"`start_lr` must be a point of the LR grid {list(lattice.lrs)}, but got {start_lr}"
            )
        rule = PriorRule(lattice.lrs, start, self.mode, slowness, tie_tolerance)
        self.sampler = PriorSampler(lattice, rule, max_retries)
        attrs = {
            StudyAttr.SEARCHER: self.name,
            StudyAttr.LATTICE: lattice_attrs(lattice),
            StudyAttr.RULE: {"start_lr": start_lr, "slowness": slowness, "tie_tolerance": tie_tolerance},
        }
        self.study = open_study(open_storage(storage), study_name, self.sampler, attrs)
        self.sampler.warm = self.warm_start = _warm_plan(self.study, lattice, warm_start)
        self.interrupted = recover(self.study)  # trials a dead driver left running: proposed again
        self._names = [lattice.name(c) for c in lattice.cells()]
        self._lr_dist = lr_distribution(lattice.lrs)
        self._live: dict[str, optuna.Trial] = {}
        self._idle = False  # the last plan was "wait" and no trial has finished since

    def suggest(self, trial_id: str) -> Proposal | None | Finished:
        if trial_id in self._live:
            raise ValueError(f"trial id {trial_id!r} is already running; every suggest needs a new one")
        if self._idle:
            return None
        planned = self.sampler.plan(self.study)
        if not isinstance(planned, Proposal):
            self._idle = planned is None
            return planned
        trial = self.study.ask()
        cell = self.sampler._by_name[trial.suggest_categorical("cell", self._names)]
        lr = trial.suggest_float("lr", self._lr_dist.low, self._lr_dist.high, log=True)
        assert (cell, lr) == (planned.cell, planned.lr), "the sampler must fill in the planned trial"
        trial.set_user_attr(StudyAttr.TRIAL_ID, trial_id)
        # the trial's durable key: the same one the Ray Train run folder and the MLflow child run carry
        trial.set_user_attr(StudyAttr.TRIAL_KEY, trial_key(self.study.study_name, self.lattice, planned))
        self._live[trial_id] = trial
        return planned

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        if trial_id not in self._live:
            raise KeyError(f"trial id {trial_id!r} was not proposed by this searcher (or already completed)")
        record(self.study, self._live.pop(trial_id), outcome)
        self._idle = False

    def on_trial_result(self, trial_id: str, *, step: int, val_loss: float, flops: float,
                        total_steps: int) -> EarlyStop | None:
        """search.early_stop: record the evaluation point on the trial's Optuna trial (its curve, kept
        with the study) and stop the trial when it is clearly worse than its cell's incumbent."""
        trial = self._live.get(trial_id)
        if self.early_stop_margin is None or trial is None or not math.isfinite(val_loss):
            return None
        with warnings.catch_warnings():  # a step reported again after a restart from a checkpoint is ignored
            warnings.simplefilter("ignore", UserWarning)
            trial.report(val_loss, step)
        me = str(trial.number)
        cell = trial.params["cell"]
        lr = trial.params["lr"]
        curves: dict[str, dict[int, float]] = {}
        numbers: dict[str, int] = {}
        lrs: dict[str, float] = {}
        for t in self.study.get_trials(deepcopy=False):
            if t.params.get("cell") != cell:
                continue
            standing = t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE)
            if standing or early_stopped(t) or loss_of(t) is not None:  # not failed, not interrupted
                numbers[str(t.number)] = t.number
            if str(t.number) == me or (standing and t.params["lr"] != lr):
                curves[str(t.number)] = dict(t.intermediate_values)
                lrs[str(t.number)] = t.params["lr"]
        curves[me][step] = val_loss  # the storage's copy may lag the report just made
        found = es.decide(me, curves, first=es.first_trial(numbers), margin=self.early_stop_margin)
        if found is None:
            return None
        decision = EarlyStop(step=step, total_steps=total_steps, matched_step=found.step, loss=found.loss,
                             incumbent_lr=lrs[found.incumbent], incumbent_loss=found.incumbent_loss,
                             margin=self.early_stop_margin, saved_flops=es.saved_flops(flops, step, total_steps),
                             lr=lr)
        record_early_stop(self.study, self._live.pop(trial_id), decision.to_attr())
        self.sampler._cache = None  # the study changed: the cell may move on
        self._idle = False
        return decision

    def early_stops(self) -> dict[str, EarlyStop]:
        """Every early-stop decision the study holds, by the trial's durable key (`trial_key`)."""
        return {t.user_attrs[StudyAttr.TRIAL_KEY]: EarlyStop.from_attr(t.user_attrs[StudyAttr.EARLY_STOP])
                for t in self.study.get_trials(deepcopy=False)
                if early_stopped(t) and StudyAttr.TRIAL_KEY in t.user_attrs and StudyAttr.EARLY_STOP in t.user_attrs}

    def settled(self) -> dict[Cell, float]:
        _, settled = self.sampler.derive(self.study)
        return {cell: self.lattice.lrs[i] for cell, i in settled.items()}

    def blocked(self) -> dict[Cell, str]:
        views, _ = self.sampler.derive(self.study)
        return {cell: v.blocked for cell, v in views.items() if v.blocked is not None}


def _warm_plan(study: optuna.Study, lattice: Lattice, given: WarmPlan | None) -> WarmPlan | None:
    """The study's warm start: the one it was created with (a resumed sweep replays the same
    forecasts), else `given`, stored on the study."""
    stored = study.user_attrs.get(WARM_ATTR)
    plan = WarmPlan.from_attr(stored) if stored is not None else given
    if plan is None:
        return None
    missing = [lattice.name(c) for c in lattice.cells() if lattice.name(c) not in plan.lrs]
    if missing:
        raise ValueError(f"the warm start of study {study.study_name!r} has no forecast for cells {missing}")
    if stored is None:
        study.set_user_attr(WARM_ATTR, plan.to_attr())
    return plan


class MonotoneSearcher(PriorSearcher):
    """The paper's 2-trial rule: the bound and `slowness` steps below it, the better one settles."""

    name = "monotone"
    mode = "monotone"


class BracketSearcher(PriorSearcher):
    """monotone, then keep stepping down while the lowest tried LR wins."""

    name = "bracket"
    mode = "bracket"


class VerifySearcher(PriorSearcher):
    """monotone plus one step above the bound, to catch an optimum that rose."""

    name = "verify"
    mode = "verify"


class TrendSearcher(PriorSearcher):
    """Start from the fitted trend of the settled cells (clipped to the bound); one trial when it
    agrees with the bound, two otherwise."""

    name = "trend"
    mode = "trend"
