"""search.warm_start end to end: a real earlier sweep in MLflow, then `raysweep run --warm-start` on a
real local Ray cluster starts every cell from the earlier sweep's fitted trend."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysweep.cli import main
from raysweep.config import spec_from_dict
from raysweep.sweep.runner import run_sweep

pytestmark = pytest.mark.slow

BASE: dict = {
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
    "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
    "data": {"dataset": "mnist5k", "train_subset": 1024},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
    "search": {"searcher": "monotone"},
}


def test_a_second_sweep_starts_every_cell_from_the_first_ones_trend(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    earlier = spec_from_dict({**BASE, "name": "earlier", "epochs": [0.5, 1], "tracking": {"experiment": "earlier"}})
    run_sweep(earlier, source="test", tracking_uri=uri, results_dir=tmp_path / "res", verbose=0)

    # the second sweep: a longer budget than the earlier one measured (its forecast is held at the edge)
    space = tmp_path / "second.yaml"
    space.write_text(yaml.safe_dump({**BASE, "name": "second", "epochs": [0.5, 1, 2],
                                     "tracking": {"experiment": "second"}}))
    assert main(["run", str(space), "--tracking-uri", uri, "--results", str(tmp_path / "res"),
                 "--warm-start", "earlier", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "raysweep: warm start: lr ~" in out and "from 4 cells of earlier" in out
    assert "2 cell(s) outside its sizes or budgets held at its edge" in out

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("second").experiment_id
    parent = client.search_runs([exp], filter_string="tags.`raysweep.kind` = 'sweep'")[0]
    assert parent.data.tags["raysweep.warm_start"] == "earlier"
    assert parent.data.params["search.warm_start"] == "earlier"
    trials = client.search_runs([exp], filter_string="tags.`raysweep.kind` = 'trial'")
    per_cell = Counter(r.data.tags["raysweep.cell"] for r in trials)
    assert set(per_cell) == {f"nfnet_t{m}@{e}" for m in (0, 1) for e in ("0.5", "1", "2")}
    assert all(1 <= n <= 2 for n in per_cell.values()), per_cell  # no follow-ups: the forecast's one or two
    assert all(r.data.tags["raysweep.reason"].startswith("warm start") for r in trials)
    assert all(r.data.tags["raysweep.status"] == "ok" for r in trials)
    held = [r for r in trials if r.data.tags["raysweep.cell"].endswith("@2")]
    assert all("held at the earlier study's edge" in r.data.tags["raysweep.reason"] for r in held)

    # the study keeps the plan, so a resume replays the same forecasts
    study = optuna.load_study(study_name=parent.data.tags["raysweep.study"],
                              storage=f"sqlite:///{tmp_path / 'res' / 'second' / 'optuna.db'}")
    plan = study.user_attrs["raysweep.warm_start"]
    assert plan["source"] == "earlier" and sorted(plan["held"]) == ["nfnet_t0@2", "nfnet_t1@2"]
    assert set(plan["lrs"]) == set(per_cell)
