"""search.early_stop at the Ray edge without a cluster: the scheduler's STOP, the adapter telling the
searcher once, and the close of a run a killed driver left behind."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from raysweep.core.records import M, Tag
from raysweep.core.space import Lattice
from raysweep.search import MonotoneSearcher
from raysweep.search import early_stop as es
from raysweep.sweep.closing import _reconcile_leftovers
from raysweep.sweep.early_stop import EarlyStopScheduler
from raysweep.sweep.tune_searcher import TuneCellSearcher
from raysweep.tracking.store import TrialRun

LATTICE = Lattice(models=("m0",), epochs=(1.0,), lrs=(0.1, 0.2, 0.4))


def _result(loss: float, step: int, status: str = "running") -> dict:
    return {M.STATUS: status, M.VAL_LOSS: loss, M.STEP: step, M.FLOPS: 1e9 * step, M.TOTAL_STEPS: 100}


def test_the_scheduler_stops_the_trial_the_searcher_stops_and_the_searcher_hears_of_it_once() -> None:
    tune = TuneCellSearcher(MonotoneSearcher(LATTICE, start_lr=0.4, early_stop=0.1), LATTICE, study="s")
    assert tune.suggest("A")["lr"] == 0.4 and tune.suggest("B")["lr"] == 0.2
    sched = EarlyStopScheduler(tune)
    a, b = SimpleNamespace(trial_id="A"), SimpleNamespace(trial_id="B")
    assert sched.on_trial_result(None, a, _result(1.0, 25)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, b, _result(1.05, 25)) == TrialScheduler.CONTINUE  # within the margin
    assert sched.on_trial_result(None, a, _result(0.8, 50)) == TrialScheduler.CONTINUE
    # a mid-epoch checkpoint report carries no val/loss: nothing to decide
    assert sched.on_trial_result(None, b, {M.STATUS: "running", M.STEP: 40}) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, b, _result(1.2, 50)) == TrialScheduler.STOP
    stop = tune.early_stopped["B"]
    assert stop.step == 50 and stop.saved_flops == pytest.approx(50e9)
    tune.on_trial_complete("B", {**_result(1.2, 50), "done": True})  # told already: not twice
    tune.on_trial_complete("A", _result(0.7, 100, status="ok"))
    assert tune.suggest("C") == "FINISHED"  # 0.4 beat the stopped 0.2 and is the grid's top: settled
    assert tune.cell_searcher.settled() == {next(iter(LATTICE.cells())): 0.4}
    assert math.isfinite(stop.loss)


def test_a_run_a_killed_driver_left_running_ends_with_the_studys_early_stop() -> None:
    """The decision reached the study but the driver died before MLflow heard of it: the next
    session's close ends the leftover run `stopped` with the reason and the saved FLOPs."""
    stop = es.EarlyStop(step=20, total_steps=80, matched_step=20, loss=1.5, incumbent_lr=0.4, incumbent_loss=1.0,
                        margin=0.29, saved_flops=3e9, lr=0.8)
    calls: list[tuple] = []
    tracker = SimpleNamespace(
        set_tags=lambda run, tags: calls.append(("tags", run, tags)),
        end_trial=lambda run, status, metrics=None, tags=None: calls.append(("end", run, status, metrics, tags)))
    callback = SimpleNamespace(earlier_runs={"k-stopped": TrialRun("r1", "RUNNING", None),
                                             "k-cut": TrialRun("r2", "RUNNING", None),
                                             "k-done": TrialRun("r3", "FINISHED", None)})
    searcher = SimpleNamespace(early_stops=lambda: {"k-stopped": stop})
    assert _reconcile_leftovers(tracker, callback, searcher) == 2  # type: ignore[arg-type]
    # the reason, the saved FLOPs and the status in one closing batch: a second kill cannot split them
    assert ("end", "r1", "stopped", {M.SAVED_FLOPS: 3e9}, {Tag.EARLY_STOP: stop.reason()}) in calls
    assert ("end", "r2", "stopped", None, None) in calls and not any(c[1] == "r3" for c in calls)
    assert not any(c[0] == "tags" for c in calls)
