"""Adapts any `raysweep.search.CellSearcher` to Ray Tune's `Searcher` contract."""

from __future__ import annotations

import json
import math
from typing import Any, cast

from ray.tune.search import Searcher

from raysweep.core.records import M, TrialStatus
from raysweep.core.space import Lattice
from raysweep.search import CellSearcher, EarlyStop, Finished, Outcome

METRIC = M.VAL_LOSS


class TuneCellSearcher(Searcher):
    def __init__(self, searcher: CellSearcher, lattice: Lattice, *, study: str = "") -> None:
        super().__init__(metric=METRIC, mode="min")
        self.study = study  # stamped on every trial config: part of the trial's durable key
        self.cell_searcher = searcher  # not `searcher`: Tune walks `.searcher` chains of wrappers
        self.lattice = lattice
        self.proposals: dict[str, dict[str, Any]] = {}
        # search.early_stop: the trials the searcher stopped, by Tune trial id (the callback reads them)
        self.early_stopped: dict[str, EarlyStop] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.cell_searcher.suggest(trial_id)
        if proposal is None:
            return None
        if isinstance(proposal, Finished):
            # Tune's sentinel is the string "FINISHED", though its own signature promises a dict
            return cast(dict[str, Any], Searcher.FINISHED)
        cell = proposal.cell
        config = {
            "model": self.lattice.models[cell.m],
            "epochs": self.lattice.epochs[cell.e],
            "lr": proposal.lr,
            "reason": proposal.reason,
            "attempt": proposal.attempt,
            "study": self.study,
        }
        self.proposals[trial_id] = config
        return config

    def early_stop(self, trial_id: str, result: dict[str, Any]) -> EarlyStop | None:
        """An evaluation point of a running trial (a report with val/loss and status running): the
        searcher's decision to stop it, or None (`EarlyStopScheduler` asks at every report)."""
        if (trial_id not in self.proposals or trial_id in self.early_stopped or METRIC not in result
                or result.get(M.STATUS) != TrialStatus.RUNNING.value or M.STEP not in result):
            return None
        decision = self.cell_searcher.on_trial_result(
            trial_id, step=int(result[M.STEP]), val_loss=float(result[METRIC]),
            flops=float(result.get(M.FLOPS, math.nan)), total_steps=int(result.get(M.TOTAL_STEPS, 0)))
        if decision is not None:
            self.early_stopped[trial_id] = decision
        return decision

    def scheduler_stop(self, trial_id: str, decision: EarlyStop) -> None:
        """search.scheduler stopped a running trial at an evaluation point (`CellScheduler`): the
        searcher learns at once that its LR is not the cell's best (a loss that loses to every
        finished trial, as a diverged one), so it never waits for the trial or proposes it again."""
        if trial_id not in self.proposals or trial_id in self.early_stopped:
            return
        self.early_stopped[trial_id] = decision
        self.cell_searcher.on_trial_complete(trial_id, Outcome(math.inf, TrialStatus.DIVERGED))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.proposals or trial_id in self.early_stopped:
            return  # an early-stopped trial was told to the searcher when it was stopped
        if error:
            outcome = Outcome(math.inf, TrialStatus.FAILED)
        else:
            status = TrialStatus.parse((result or {}).get(M.STATUS))
            if status is None or not status.finished:
                # Removed while pending, or stopped before its budget ended (the sweep was stopped):
                # it says nothing about its LR. Left open in the searcher's storage, it is proposed
                # again when the sweep resumes.
                return
            loss = float((result or {}).get(METRIC, math.inf))
            if status is TrialStatus.DIVERGED or not math.isfinite(loss):
                outcome = Outcome(math.inf, TrialStatus.DIVERGED)
            else:
                outcome = Outcome(loss, TrialStatus.OK)
        self.cell_searcher.on_trial_complete(trial_id, outcome)

    # Tune checkpoints its searcher through get_state / set_state (and save / restore).
    def get_state(self) -> dict[str, Any]:
        return {"searcher": self.cell_searcher.get_state(), "proposals": self.proposals}

    def set_state(self, state: dict[str, Any]) -> None:
        self.cell_searcher.set_state(state["searcher"])
        self.proposals = dict(state["proposals"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))
