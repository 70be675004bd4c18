"""search.early_stop through Ray Tune: a trial clearly worse than its cell's first trial at a matched
evaluation step is stopped, its MLflow run ends `stopped` with the reason and the FLOPs it saved, the
cell still settles, and a resumed sweep never runs the stopped trial again."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from readback import assert_best_in_cell

from raysweep.config import spec_from_dict
from raysweep.core.records import M, StudyAttr, Tag
from raysweep.sweep.runner import latest_study, run_sweep

pytestmark = pytest.mark.slow

GOOD, BAD = 0.4, 0.00625  # the first cell's start LR and the one step below it (factor 64)


def spec():  # type: ignore[no-untyped-def]
    return spec_from_dict({
        "name": "estop",
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
        "epochs": [4],  # 640 images / batch 64: 40 steps, evaluated at 10, 20, 30 and 40
        "lr": {"base": GOOD, "factor": 64, "low": BAD, "high": GOOD},
        "data": {"dataset": "mnist5k", "train_subset": 640},
        "optim": {"agc_clip": 0.16},
        # one trial at a time: the bad trial starts only once the first has its whole curve, so it is
        # compared at its first evaluation point whatever the machine's load (with two in flight, a
        # loaded machine could let it finish before the first trial reported anything)
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 1},
        # margin 0: any loss above the incumbent's at a matched step stops the trial (the tiny LR
        # barely moves from the initial loss, so it is worse at every step but perhaps the first)
        "search": {"searcher": "monotone", "early_stop": {"margin": 0.0}},
        "tracking": {"experiment": "estop"},
    })


def runs(client: MlflowClient) -> list:
    exp = client.get_experiment_by_name("estop").experiment_id
    return client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = 'trial'", max_results=100)


def test_early_stopped_trial_ends_stopped_with_reason_and_is_never_run_again(ray_cluster: None,
                                                                              tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = tmp_path / "res"
    # session 1 runs the cell's first trial to its end and stops the second at a matched evaluation point
    first = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=res, verbose=0, max_trials=2)
    client = MlflowClient(uri)
    (bad,) = [r for r in runs(client) if float(r.data.params["lr"]) == BAD]
    assert bad.data.tags[Tag.STATUS] == "stopped" and bad.info.status == "KILLED"
    reason = bad.data.tags[Tag.EARLY_STOP]
    assert "early stop at step" in reason and f"lr {GOOD:g}" in reason, reason
    saved = bad.data.metrics[M.SAVED_FLOPS]
    stopped_at = max(m.step for m in client.get_metric_history(bad.info.run_id, M.FLOPS))  # its last report
    assert 0 < stopped_at < 40 and f"at step {stopped_at}/40" in reason
    # the rest of the 40-step budget at the rate of its steps so far
    assert saved == pytest.approx(bad.data.metrics[M.FLOPS] * (40 - stopped_at) / stopped_at, rel=1e-6)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.metrics[M.SWEEP_SAVED_FLOPS] == pytest.approx(saved)
    storage = f"sqlite:///{res / 'estop' / 'optuna.db'}"
    study = optuna.load_study(study_name=latest_study(storage, "estop"), storage=storage)
    (pruned,) = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned.params["lr"] == BAD and pruned.user_attrs[StudyAttr.STATUS] == "stopped"
    assert pruned.user_attrs[StudyAttr.EARLY_STOP]["saved_flops"] == pytest.approx(saved)
    assert pruned.intermediate_values  # its curve, kept with the study

    # session 2 resumes: the cell is settled; the stopped trial is not run or reopened
    second = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=res, verbose=0, resume=True)
    assert second.parent_run_id == first.parent_run_id
    after = runs(client)
    assert [r.info.run_id for r in after if float(r.data.params["lr"]) == BAD] == [bad.info.run_id]
    again = client.get_run(bad.info.run_id)
    assert again.info.end_time == bad.info.end_time and again.data.tags[Tag.EARLY_STOP] == reason
    (good,) = [r for r in after if float(r.data.params["lr"]) == GOOD]
    assert good.data.tags[Tag.STATUS] == "ok"
    assert {row.cell: row.best_lr for row in second.rows} == {"nfnet_t0@4": GOOD}  # the cell settles
    assert assert_best_in_cell(after) == 1
    study = optuna.load_study(study_name=study.study_name, storage=storage)
    assert [t.params["lr"] for t in study.trials].count(BAD) == 1  # never proposed again
