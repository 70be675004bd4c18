"""search.early_stop on Ray Tune: a FIFO scheduler that stops a trial when its searcher says so.

Tune asks the scheduler about every result before any callback sees it. At an evaluation point (a
report with val/loss and status running) `EarlyStopScheduler` hands it to the searcher
(`TuneCellSearcher.early_stop`), which applies the pure rule (`raysweep.search.early_stop`) over the
cell's curves in its Optuna study and records the decision there at once; the scheduler then answers
STOP. Tune marks the result done, stops the trial's actor (the training thread exits at its next
report, a Train run's workers with it) and calls `on_trial_complete` on the searcher (which already
knows) and on the callbacks: `MlflowTrialCallback` ends the run `stopped` with the reason and the
FLOPs saved. The decision acts on reports only, so it is the same on every device.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from raysweep.sweep.tune_searcher import TuneCellSearcher


class EarlyStopScheduler(FIFOScheduler):
    def __init__(self, searcher: TuneCellSearcher) -> None:
        super().__init__()
        self.searcher = searcher

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.searcher.early_stop(trial.trial_id, result) is not None:
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return "Using FIFO scheduling with raysweep's in-cell early stopping (search.early_stop)."
