"""search.scheduler on Ray Tune: Tune's own ASHAScheduler, one per (model, budget) cell.

Trials of different cells have different budgets (and models), so their losses at a rung say
nothing about each other: `CellScheduler` keeps one `ASHAScheduler` per cell (made when the cell's
first trial is added) and hands each of them only its own cell's trials, so a cell's LR grid is its
own bracket population and no trial ever competes with another cell's.

The time attribute is the evaluation point: a report at step s of a budget of T steps is at
`round(eval_points * s / T)` (1..eval_points), and a trial's budget is `max_t = eval_points` long.
With `eval_points: 8` and the reduction factor 2 the rungs are at 1, 2 and 4 eighths of the budget.
Every trial of a cell runs the same schedule, so every trial passes each rung at the same step, and
a rung compares trials that have trained for the same number of steps. Only evaluation points
(reports with val/loss and status running) reach the scheduler; a trial's final report and
mid-epoch checkpoints do not (ASHA stops a trial at `max_t` anyway, which is its end).

When ASHA answers STOP at an evaluation point, the decision (`SchedulerStop`, an `EarlyStop` with the
rung and the cut-off) goes to `TuneCellSearcher.scheduler_stop`: the grid searcher counts the LR as
not the cell's best (a loss that loses to every finished trial) and the MLflow callback ends the run
`stopped` with the reason (`raysweep.early_stop`) and the FLOPs it saved, as for search.early_stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raysweep.config import SchedulerSpec
from raysweep.core.records import M, TrialStatus
from raysweep.search import EarlyStop
from raysweep.search.early_stop import saved_flops
from raysweep.sweep.tune_searcher import METRIC, TuneCellSearcher

TIME_ATTR = "eval_point"  # the scheduler's own view of a report (never logged): 1..eval_points


@dataclass(frozen=True)
class SchedulerStop(EarlyStop):
    """A trial Tune's scheduler stopped: at `rung` (of `points` evaluation points) its loss was not in
    the best 1/reduction_factor of its cell's trials there (`incumbent_loss` holds the cut-off)."""

    scheduler: str = "asha"
    rung: int = 0
    points: int = 0
    reduction_factor: float = math.nan

    def reason(self) -> str:
        cut = f" (cut-off {self.incumbent_loss:.4g})" if math.isfinite(self.incumbent_loss) else ""
        return (f"{self.scheduler} stop at step {self.step}/{self.total_steps}: val/loss {self.loss:.4g} at rung "
                f"{self.rung}/{self.points} is not in the best 1/{self.reduction_factor:g} of its cell's trials{cut}")


def cell_name(config: dict[str, Any]) -> str:
    return f"{config['model']}@{float(config['epochs']):g}"


def eval_point(step: int, total_steps: int, points: int) -> int:
    """The report at `step` of `total_steps` as the scheduler's time: the nearest of the `points` evenly
    spaced evaluation points (the loop evaluates at floor(k * total / points))."""
    return round(points * step / total_steps) if total_steps > 0 else 0


class CellScheduler(FIFOScheduler):
    def __init__(self, searcher: TuneCellSearcher, spec: SchedulerSpec, *, points: int) -> None:
        super().__init__()
        self.searcher = searcher
        self.spec = spec
        self.points = points
        self.by_cell: dict[str, ASHAScheduler] = {}  # one Tune scheduler per cell
        self.cell_of: dict[str, str] = {}  # Tune trial id -> its cell

    def make(self) -> ASHAScheduler:
        assert self.spec.name == "asha", self.spec.name  # the config refuses the others
        return ASHAScheduler(time_attr=TIME_ATTR, metric=METRIC, mode="min", max_t=self.points,
                             grace_period=self.spec.grace_period, reduction_factor=self.spec.rf())

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the per-cell schedulers have their metric and mode

    def _scheduler(self, trial: Any) -> ASHAScheduler | None:
        cell = self.cell_of.get(trial.trial_id)
        return self.by_cell.get(cell) if cell is not None else None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        cell = cell_name(trial.config)
        self.cell_of[trial.trial_id] = cell
        if cell not in self.by_cell:
            self.by_cell[cell] = self.make()
        self.by_cell[cell].on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        sched = self._scheduler(trial)
        if (sched is None or METRIC not in result or result.get(M.STATUS) != TrialStatus.RUNNING.value
                or M.STEP not in result or not result.get(M.TOTAL_STEPS)):
            return TrialScheduler.CONTINUE
        step, total = int(result[M.STEP]), int(result[M.TOTAL_STEPS])
        loss = float(result[METRIC])
        t = eval_point(step, total, self.points)
        if step >= total or t >= self.points:
            return TrialScheduler.CONTINUE  # the end of its budget: it finishes on its own
        action = sched.on_trial_result(tune_controller, trial, {TIME_ATTR: t, METRIC: loss})
        if action != TrialScheduler.STOP:
            return TrialScheduler.CONTINUE
        rung, cutoff = _rung_of(sched, trial.trial_id, t)
        flops = float(result.get(M.FLOPS, math.nan))
        decision = SchedulerStop(step=step, total_steps=total, matched_step=step, loss=loss, incumbent_lr=math.nan,
                                 incumbent_loss=cutoff, margin=math.nan, saved_flops=saved_flops(flops, step, total),
                                 lr=float(trial.config["lr"]), scheduler=self.spec.name, rung=rung,
                                 points=self.points, reduction_factor=self.spec.rf())
        self.searcher.scheduler_stop(trial.trial_id, decision)
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self._forget(trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._forget(trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._forget(trial)

    def _forget(self, trial: Any) -> None:
        # A trial that ended leaves its rung records (as ASHA's own on_trial_complete does); only its
        # bracket assignment goes. Its final result is not a rung: ASHA would stop it there anyway.
        sched = self._scheduler(trial)
        if sched is not None:
            sched._trial_info.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return (f"Using Tune's ASHAScheduler per cell (search.scheduler: reduction factor {self.spec.rf():g}, "
                f"grace period {self.spec.grace_period}, max_t {self.points} evaluation points), "
                f"{len(self.by_cell)} cells")


def _rung_of(sched: ASHAScheduler, trial_id: str, t: int) -> tuple[int, float]:
    """The rung a trial was just recorded at (the highest milestone <= t holding it) and that rung's
    cut-off among the cell's other trials, as a loss; (t, nan) if Tune's bookkeeping reads otherwise."""
    try:
        for bracket in sched._brackets:
            for milestone, recorded in bracket._rungs:  # highest milestone first
                if milestone <= t and trial_id in recorded:
                    others = {k: v for k, v in recorded.items() if k != trial_id}
                    cut: Any = bracket.cutoff(others)
                    return int(milestone), (-float(cut) if cut is not None else math.nan)
    except (AttributeError, TypeError, ValueError):
        pass
    return t, math.nan
