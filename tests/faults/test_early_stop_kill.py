"""search.early_stop survives a killed driver: the driver (with its process group) is SIGKILLed after a
trial was stopped early and while the cell's first trial is still in flight; `--resume` finishes the
sweep without running any trial twice, without restarting the stopped one, and the stopped trial's
run is still `stopped` with its reason and saved FLOPs, untouched. Real processes, a real local Ray
cluster, real MLflow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag
from raysweep.sweep.runner import latest_study
from tests.faults.helpers import (
    child_runs,
    duplicated_steps,
    kill_group,
    start,
    sweep_runs,
    wait_for,
    write_space,
)

pytestmark = pytest.mark.slow

GOOD, BAD = 0.4, 0.00625  # the first cell's start LR and the monotone step below it (factor 64)


def test_a_killed_driver_resumes_with_every_early_stop_decision_kept(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = write_space(
        tmp_path, "estop-kill",
        # 640 images / batch 64 x 32 epochs: 320 steps, evaluated every 40 (eval_points 8). Long
        # enough that the first trial is still running when the tiny LR has been compared with it
        # (at step 40 or 80, whichever trial started first), and far enough into training that the
        # comparison is decided (0.4 is well below the barely-moved 0.00625 by step 40; at step 5 a
        # large LR can still be worse than the initial loss).
        epochs=[32],
        eval_points=8,
        lr={"base": GOOD, "factor": 64, "low": BAD, "high": GOOD},
        data={"dataset": "mnist5k", "train_subset": 640},
        # margin 0: the tiny LR, barely moving from the initial loss, stops at a matched step
        search={"searcher": "monotone", "early_stop": {"margin": 0.0}},
        checkpoint={"every_steps": 20},
    )
    common = ["--tracking-uri", uri, "--results", str(tmp_path / "results"), "--quiet"]
    first = start(["run", str(space), *common], tmp_path, tmp_path / "first.log")

    def stopped_early_and_first_in_flight() -> bool:
        if first.poll() is not None:  # fail now, not after the timeout: the race was lost
            raise AssertionError("the sweep ended before a trial was stopped early while the first ran:\n"
                                 + (tmp_path / "first.log").read_text()[-3000:])
        runs = {float(r.data.params["lr"]): r for r in child_runs(uri, "estop-kill") if "lr" in r.data.params}
        # the stopped run closed (KILLED is the close's last write, after its reason and status batch)
        return (BAD in runs and runs[BAD].info.status == "KILLED" and GOOD in runs
                and runs[GOOD].info.status == "RUNNING")

    try:
        wait_for(stopped_early_and_first_in_flight, 600, "an early-stopped trial while the first is in flight")
    finally:
        kill_group(first)
    before = {float(r.data.params["lr"]): r for r in child_runs(uri, "estop-kill")}
    assert before[BAD].data.tags[Tag.STATUS] == "stopped" and before[GOOD].info.status == "RUNNING"

    second = start(["run", str(space), *common, "--resume"], tmp_path, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]

    parents = sweep_runs(uri, "estop-kill")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    runs = child_runs(uri, "estop-kill")
    keys = [r.data.tags[Tag.TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys)) == 2  # one run per trial: none run twice
    assert all(r.info.status != "RUNNING" for r in runs)
    for r in runs:
        assert duplicated_steps(uri, r.info.run_id) == {}, r.data.tags[Tag.TRIAL_KEY]
    after = {float(r.data.params["lr"]): r for r in runs}
    # the stopped trial: not restarted, not reopened, its decision as the first driver wrote it
    bad = MlflowClient(uri).get_run(before[BAD].info.run_id)
    assert after[BAD].info.run_id == bad.info.run_id and bad.info.status == "KILLED"
    assert bad.info.end_time == before[BAD].info.end_time
    assert bad.data.tags[Tag.STATUS] == "stopped"
    assert bad.data.tags[Tag.EARLY_STOP] == before[BAD].data.tags[Tag.EARLY_STOP]
    assert bad.data.metrics[M.SAVED_FLOPS] == before[BAD].data.metrics[M.SAVED_FLOPS] > 0
    # the first trial continued under its run and finished; the cell settled on it
    assert after[GOOD].info.run_id == before[GOOD].info.run_id and after[GOOD].data.tags[Tag.STATUS] == "ok"
    assert after[GOOD].data.tags.get(Tag.BEST_IN_CELL) == "true"
    storage = f"sqlite:///{tmp_path / 'results' / 'estop-kill' / 'optuna.db'}"
    study = optuna.load_study(study_name=latest_study(storage, "estop-kill"), storage=storage)
    assert [t.params["lr"] for t in study.trials].count(BAD) == 1  # never proposed again
