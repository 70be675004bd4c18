"""`raysweep table`'s curves (issue 16): a trial's val/loss at each evaluation point, read back from
MLflow as (step / total steps, loss), the total from the trial's `total_steps` param. The Tune
callback is driven as Tune drives it against a real SQLite MLflow store."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from raysweep.config import spec_from_dict
from raysweep.core.records import M
from raysweep.results.mlflow_rows import read_trials
from raysweep.sweep.callbacks import MlflowTrialCallback
from raysweep.tracking import SweepTracker

SPEC = {"name": "ctest", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [0.5],
        "lr": {"base": 0.1, "factor": 2, "low": 0.1, "high": 0.2}, "data": {"dataset": "mnist5k"},
        "search": {"searcher": "grid"}, "tracking": {"experiment": "ctest"}}


def test_the_table_reads_each_trials_validation_curve(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_from_dict(SPEC)
    tracker = SweepTracker(uri, "ctest", journal_dir=tmp_path / "sweep")
    parent = tracker.start_sweep(spec, source="test", n_cells=1, study="cstudy")
    cb = MlflowTrialCallback(tracker, parent, spec, concurrent=1, train_storage=tmp_path / "train")
    static = {M.FLOPS: 1e9, M.MODEL_PARAMS: 1000, M.FLOPS_PER_EXAMPLE: 5.0, M.TOTAL_STEPS: 8}
    reports = {0.1: [("running", 2, 2.0), ("running", 4, 1.5), ("ok", 8, 1.0)],
               0.2: [("running", 2, 2.5), ("diverged", 5, None)]}
    for lr, steps in reports.items():
        trial = SimpleNamespace(trial_id=f"t{lr}", config={"model": "nfnet_t0", "epochs": 0.5, "lr": lr,
                                                           "study": "cstudy", "reason": "test"})
        cb.on_trial_start(0, [], trial)
        for status, step, loss in steps:
            result = {M.STATUS: status, M.STEP: step, **static}
            if loss is not None:
                result[M.VAL_LOSS] = loss
            cb.on_trial_result(0, [], trial, result)
        cb.on_trial_complete(0, [], trial)
    tracker.close(30.0)

    rows = {r.lr: r for r in read_trials(uri, "ctest", curves=True)}
    assert rows[0.1].curve == ((0.25, 2.0), (0.5, 1.5), (1.0, 1.0))
    assert rows[0.2].val_loss == math.inf and rows[0.2].curve[0] == (0.25, 2.5)
    assert all(r.curve == () for r in read_trials(uri, "ctest"))  # only when asked: one request per run
