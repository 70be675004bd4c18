"""The monotone-LR searcher through Ray Tune: a real sweep, reasons in MLflow, and a resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from readback import assert_best_in_cell

from raysweep.config import spec_from_dict
from raysweep.sweep.runner import latest_study, run_sweep

pytestmark = pytest.mark.slow


def spec(**over: object):  # type: ignore[no-untyped-def]
    d: dict = {
        "name": "mono",
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
        "epochs": [0.25, 0.5],  # 17 and 35 steps over MNIST-5k's 4,500 training images: enough to learn
        "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
        "data": {"dataset": "mnist5k"},
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
        "search": {"searcher": "monotone"},
        "tracking": {"experiment": "mono"},
    }
    d.update(over)
    return spec_from_dict(d)


def child_runs(client: MlflowClient, parent_ids: list[str]) -> list:
    exp = client.get_experiment_by_name("mono").experiment_id
    runs = client.search_runs([exp], filter_string="tags.`raysweep.kind` = 'trial'", max_results=1000)
    return [r for r in runs if r.data.tags["mlflow.parentRunId"] in parent_ids]


def test_monotone_sweep_two_trials_per_cell_with_reasons(ray_cluster: None, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=tmp_path / "res", verbose=0)
    client = MlflowClient(uri)
    runs = child_runs(client, [out.parent_run_id])
    per_cell = Counter(r.data.tags["raysweep.cell"] for r in runs)
    assert set(per_cell) == {"nfnet_t0@0.25", "nfnet_t0@0.5", "nfnet_t1@0.25", "nfnet_t1@0.5"}
    # the first cell brackets from the start LR in either direction (2 trials or more)
    assert 2 <= per_cell.pop("nfnet_t0@0.25") <= 6
    settled = {row.cell: row.best_lr for row in out.rows}
    preds = {"nfnet_t0@0.5": ["nfnet_t0@0.25"], "nfnet_t1@0.25": ["nfnet_t0@0.25"],
             "nfnet_t1@0.5": ["nfnet_t0@0.5", "nfnet_t1@0.25"]}
    for cell, n in per_cell.items():  # 2 trials: the bound and one step below (1 if the bound is the floor)
        bound = min(settled[p] for p in preds[cell])
        assert n == (1 if bound == 0.05 else 2), (cell, n, bound)
        assert settled[cell] <= bound  # the prior's upper bound holds
    for r in runs:
        assert r.data.tags["raysweep.reason"], r.data.tags
        assert r.data.tags["raysweep.status"] == "ok"
    assert any(r.data.tags["raysweep.reason"].startswith("bound from") for r in runs)
    parent = client.get_run(out.parent_run_id)
    assert assert_best_in_cell(runs) == 4  # the lowest val/loss of each cell, read back from MLflow
    best = [r for r in runs if r.data.tags.get("raysweep.best_in_cell") == "true"]
    for r in best:
        key = "raysweep.settled." + r.data.tags["raysweep.cell"].replace("@", ":")
        assert float(parent.data.tags[key]) == float(r.data.params["lr"])
    # the study is a real Optuna study in SQLite next to the results
    storage = f"sqlite:///{tmp_path / 'res' / 'mono' / 'optuna.db'}"
    study = optuna.load_study(study_name=parent.data.tags["raysweep.study"], storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(runs)


def test_stopped_sweep_resumes_from_optuna_storage_without_rerunning_settled_trials(
        ray_cluster: None, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=tmp_path / "res", verbose=0, max_trials=3)
    client = MlflowClient(uri)
    done_first = [r for r in child_runs(client, [first.parent_run_id]) if r.data.tags["raysweep.status"] == "ok"]
    assert 3 <= len(done_first) < 8  # stopped mid-sweep
    # a trial cut off by the stop is recorded as stopped, not as a failure of its LR
    assert {r.data.tags["raysweep.status"] for r in child_runs(client, [first.parent_run_id])} <= {"ok", "stopped"}
    storage = f"sqlite:///{tmp_path / 'res' / 'mono' / 'optuna.db'}"
    study_name = latest_study(storage, "mono")
    assert study_name == client.get_run(first.parent_run_id).data.tags["raysweep.study"]

    ended_first = {r.info.run_id: r.info.end_time for r in done_first}
    second = run_sweep(spec(), source="test", tracking_uri=uri, results_dir=tmp_path / "res", verbose=0,
                       resume=True)
    # one sweep, one parent run: the resumed session continues under the first one's
    assert second.parent_run_id == first.parent_run_id
    assert client.get_run(second.parent_run_id).data.tags["raysweep.study"] == study_name
    runs = child_runs(client, [second.parent_run_id])
    keys = [r.data.tags["raysweep.trial_key"] for r in runs]
    assert len(keys) == len(set(keys))  # one child run per (cell, lr, attempt)
    # a settled trial is not run again: its run is not reopened, and no other run has its (cell, lr)
    again = {r.info.run_id for r in runs if r.info.run_id in ended_first and r.info.end_time != ended_first[r.info.run_id]}
    assert not again, "a settled trial ran again"
    done_second = [r for r in runs if r.data.tags["raysweep.status"] == "ok" and r.info.run_id not in ended_first]
    keys_first = {(r.data.tags["raysweep.cell"], float(r.data.params["lr"])) for r in done_first}
    keys_second = {(r.data.tags["raysweep.cell"], float(r.data.params["lr"])) for r in done_second}
    assert not keys_first & keys_second, "a settled trial ran again"
    # the resumed sweep finished every cell, and its summary covers both sessions
    assert {row.cell for row in second.rows} == {"nfnet_t0@0.25", "nfnet_t0@0.5", "nfnet_t1@0.25", "nfnet_t1@0.5"}
    assert all(row.best_lr is not None for row in second.rows)
    assert sum(row.trials for row in second.rows) >= len(done_first) + len(done_second)
    # over both sessions, one run per cell is tagged best: the lowest val/loss of the cell
    assert assert_best_in_cell(child_runs(client, [second.parent_run_id])) == 4
