"""search.scheduler's per-cell wiring without a cluster: one Tune ASHAScheduler per (model, budget)
cell, rungs at evaluation points, a STOP recorded as a decision the grid searcher and the MLflow
callback read, and trials of different cells never compared."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from raysweep.config import SchedulerSpec
from raysweep.core.records import M
from raysweep.core.space import Lattice
from raysweep.search import GridSearcher
from raysweep.sweep.cell_scheduler import CellScheduler, SchedulerStop, eval_point
from raysweep.sweep.tune_searcher import TuneCellSearcher

LATTICE = Lattice(models=("m0",), epochs=(1.0, 2.0), lrs=(0.1, 0.2, 0.4))
TOTAL = 80  # steps of every budget here; 8 evaluation points at 10, 20, ..., 80


def _result(loss: float, step: int, status: str = "running", total: int = TOTAL) -> dict:
    return {M.STATUS: status, M.VAL_LOSS: loss, M.STEP: step, M.FLOPS: 1e9 * step, M.TOTAL_STEPS: total}


def _setup(rf: float = 2.0) -> tuple[TuneCellSearcher, CellScheduler, dict[str, SimpleNamespace]]:
    tune = TuneCellSearcher(GridSearcher(LATTICE), LATTICE, study="s")
    sched = CellScheduler(tune, SchedulerSpec(name="asha", reduction_factor=rf), points=8)
    trials = {}
    for i in range(6):  # the grid proposes cell by cell: m0@1 x 3 LRs, then m0@2 x 3 LRs
        tid = f"t{i}"
        config = tune.suggest(tid)
        trials[tid] = SimpleNamespace(trial_id=tid, config=config)
        sched.on_trial_add(None, trials[tid])
    return tune, sched, trials


def test_eval_point_is_the_nearest_of_the_evenly_spaced_points() -> None:
    for total in (8, 17, 80, 313):
        steps = [k * total // 8 for k in range(1, 9)]  # where the loop evaluates (floor(k * total / 8))
        assert [eval_point(s, total, 8) for s in steps] == list(range(1, 9))
    assert eval_point(5, 0, 8) == 0


def test_one_asha_per_cell_and_a_worse_trial_stops_only_against_its_own_cell() -> None:
    tune, sched, t = _setup()
    assert set(sched.by_cell) == {"m0@1", "m0@2"} and all(isinstance(s, ASHAScheduler) for s in sched.by_cell.values())
    assert sched.by_cell["m0@1"] is not sched.by_cell["m0@2"]
    cont, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    # cell m0@2's first trial is far worse than anything in m0@1, but alone in its cell: never stopped
    assert sched.on_trial_result(None, t["t3"], _result(9.0, 10)) == cont
    assert sched.on_trial_result(None, t["t0"], _result(1.0, 10)) == cont  # first at rung 1 of m0@1
    # a mid-epoch checkpoint report (no val/loss) and a report between rungs decide nothing
    assert sched.on_trial_result(None, t["t1"], {M.STATUS: "running", M.STEP: 5}) == cont
    assert sched.on_trial_result(None, t["t1"], _result(2.0, 10)) == stop  # worse than m0@1's median at rung 1
    assert sched.on_trial_result(None, t["t4"], _result(8.0, 10)) == cont  # better than t3: its own cell only
    decision = tune.early_stopped["t1"]
    assert isinstance(decision, SchedulerStop)
    assert (decision.step, decision.total_steps, decision.rung, decision.points) == (10, TOTAL, 1, 8)
    assert decision.incumbent_loss == pytest.approx(1.0)  # the rung's cut-off among the cell's other trials
    assert decision.saved_flops == pytest.approx(1e10 * 70 / 10)  # the other 70 steps at its rate so far
    assert decision.lr == t["t1"].config["lr"]
    assert decision.reason().startswith("asha stop at step 10/80: val/loss 2 at rung 1/8") and "1/2" in decision.reason()
    # the stop is told to the grid searcher at once: the LR is not the cell's best
    tune.on_trial_complete("t1", {**_result(2.0, 10), "done": True})  # already told: ignored
    sched.on_trial_complete(None, t["t1"], _result(2.0, 10))
    for tid, loss in (("t0", 0.5), ("t2", 0.7)):
        tune.on_trial_complete(tid, _result(loss, TOTAL, status="ok"))
        sched.on_trial_complete(None, t[tid], _result(loss, TOTAL, status="ok"))
    settled = tune.cell_searcher.settled()
    assert {LATTICE.name(c): lr for c, lr in settled.items()} == {"m0@1": 0.1}


def test_the_end_of_a_budget_and_final_reports_never_count_as_a_stop() -> None:
    tune, sched, t = _setup()
    assert sched.on_trial_result(None, t["t0"], _result(1.0, 40)) == TrialScheduler.CONTINUE
    # t1 reaches its last point worse than everything: ASHA would say STOP at max_t, which is its end
    assert sched.on_trial_result(None, t["t1"], _result(5.0, TOTAL)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, t["t1"], _result(5.0, TOTAL, status="ok")) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, t["t2"], _result(math.inf, 40, status="diverged")) == TrialScheduler.CONTINUE
    assert tune.early_stopped == {}


def test_tunes_default_reduction_factor_keeps_a_quarter() -> None:
    """reduction_factor unset: Tune's 4; rungs at 1 and 4 of 8 points; the cut-off is the 75th percentile."""
    _tune, sched, t = _setup(rf=4.0)
    assert SchedulerSpec(name="asha").rf() == 4.0
    assert [m for m, _ in sched.by_cell["m0@1"]._brackets[0]._rungs] == [4, 1]
    assert sched.on_trial_result(None, t["t0"], _result(1.0, 10)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, t["t1"], _result(1.5, 10)) == TrialScheduler.STOP
