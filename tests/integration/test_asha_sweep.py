"""search.scheduler: asha through Ray Tune on a real local cluster: Tune's ASHAScheduler stops a
worse trial of a cell at a rung, its MLflow run ends `stopped` with the reason and the FLOPs it
saved, the FLOPs it spent count in the sweep's total, and the cell still settles on the trial that ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from readback import assert_best_in_cell

from raysweep.config import spec_from_dict
from raysweep.core.records import M, Tag
from raysweep.sweep.runner import run_sweep

pytestmark = pytest.mark.slow

LRS = (0.1, 0.4, 1.6)  # the grid (factor 4), run one at a time in this order


def spec():  # type: ignore[no-untyped-def]
    return spec_from_dict({
        "name": "asha",
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
        "epochs": [4],  # 640 images / batch 64: 40 steps, evaluated at 5, 10, ..., 40 (eval_points 8)
        "eval_points": 8,
        "lr": {"base": 0.4, "factor": 4, "low": LRS[0], "high": LRS[-1]},
        "data": {"dataset": "mnist5k", "train_subset": 640},
        "optim": {"agc_clip": 0.16},
        # one at a time: each later trial meets rungs the earlier ones filled (rungs at 1, 2, 4 of 8
        # points); in 40 steps the larger LRs are worse early on, so ASHA stops them at a rung
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 1},
        "search": {"searcher": "grid", "scheduler": {"name": "asha", "reduction_factor": 2}},
        "tracking": {"experiment": "asha"},
    })


def test_asha_stops_a_worse_trial_of_a_cell_and_mlflow_shows_it_stopped(ray_cluster: None, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=tmp_path / "res", verbose=1)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("asha").experiment_id
    runs = client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = 'trial'", max_results=100)
    assert sorted(float(r.data.params["lr"]) for r in runs) == list(LRS)  # each LR once
    stopped = [r for r in runs if r.data.tags[Tag.STATUS] == "stopped"]
    assert stopped, {r.data.params["lr"]: r.data.tags[Tag.STATUS] for r in runs}  # ASHA stopped at least one
    assert LRS[0] not in {float(r.data.params["lr"]) for r in stopped}  # the first met empty rungs
    for bad in stopped:
        assert bad.info.status == "KILLED"
        reason = bad.data.tags[Tag.EARLY_STOP]
        assert reason.startswith("asha stop at step ") and "best 1/2 of its cell's trials" in reason, reason
        stopped_at = max(m.step for m in client.get_metric_history(bad.info.run_id, M.FLOPS))  # its last report
        assert 0 < stopped_at < 40 and f"at step {stopped_at}/40" in reason
        spent = bad.data.metrics[M.FLOPS]
        assert bad.data.metrics[M.SAVED_FLOPS] == pytest.approx(spent * (40 - stopped_at) / stopped_at, rel=1e-6)
    parent = client.get_run(out.parent_run_id)
    assert parent.data.metrics[M.SWEEP_SAVED_FLOPS] == pytest.approx(sum(r.data.metrics[M.SAVED_FLOPS] for r in stopped))
    # what ran, counted: the whole trials and the stopped ones' FLOPs up to their stop
    assert parent.data.metrics[M.SWEEP_TOTAL_FLOPS] == pytest.approx(sum(r.data.metrics[M.FLOPS] for r in runs), rel=1e-6)
    ok = {float(r.data.params["lr"]): r.data.metrics[M.VAL_LOSS] for r in runs if r.data.tags[Tag.STATUS] == "ok"}
    assert {row.cell: row.best_lr for row in out.rows} == {"nfnet_t0@4": min(ok, key=ok.__getitem__)}
    assert assert_best_in_cell(runs) == 1
