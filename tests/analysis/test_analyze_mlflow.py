"""`raysweep analyze --experiment` on a real MLflow store (SQLite in tmp_path, no mocks), filled the
way raysweep.tracking writes a sweep: a sweep resumed over two sessions (two parent runs sharing
raysweep.study) is analysed as one, and the outputs hang on both parent runs as artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from raysweep.analysis.testing import Surface
from raysweep.cli import main
from raysweep.core.records import M, Tag, cell_name

EXPERIMENT = "analysis-test"


def fill_store(uri: str, artifacts: Path) -> list[str]:
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    parents = [client.create_run(exp, run_name="demo", tags={Tag.KIND: Tag.KIND_SWEEP, Tag.STUDY: "demo-1"}).info.run_id
               for _ in range(2)]
    s = Surface()
    i = 0
    for n, model in ((10_000, "m0"), (30_000, "m1"), (100_000, "m2")):
        for d in (0.5, 1, 2, 4):
            for lr in (0.2, 0.4):
                parent = parents[i % 2]  # the second session ran half of the trials
                i += 1
                loss = s.loss(n, d) * (1 + s.curvature * math.log(lr / s.best_lr(n, d)) ** 2)
                run = client.create_run(exp, run_name=f"{cell_name(model, d)} lr={lr:g}", tags={
                    Tag.PARENT: parent, Tag.KIND: Tag.KIND_TRIAL, Tag.CELL: cell_name(model, d), Tag.STATUS: "ok"})
                flops = s.k * n * d
                client.log_batch(run.info.run_id,
                                 metrics=[Metric(M.VAL_LOSS, loss, 0, 1), Metric(M.FLOPS, flops, 0, 1),
                                          Metric(M.CORE_HOURS, flops * 1e-13, 0, 1)],
                                 params=[Param("model", model), Param("model_params", str(n)),
                                         Param("epochs", str(d)), Param("lr", str(lr)), Param("seed", "0")])
                client.set_terminated(run.info.run_id)
    # a diverged trial and a failed one: the first counts as a diverged LR, the second not at all
    for status in ("diverged", "failed"):
        run = client.create_run(exp, tags={Tag.PARENT: parents[0], Tag.KIND: Tag.KIND_TRIAL, Tag.STATUS: status})
        client.log_batch(run.info.run_id, params=[Param("model", "m0"), Param("model_params", "10000"),
                                                  Param("epochs", "1"), Param("lr", "3.2"), Param("seed", "0")],
                         tags=[RunTag(Tag.CELL, "m0@1")])
    return parents


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return uri, fill_store(uri, root / "artifacts")


def test_analyze_an_experiment_over_two_sessions_logs_artifacts_on_both_parents(
        store: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, parents = store
    out = tmp_path / "out"
    assert main(["analyze", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", str(out),
                 "--bootstrap", "0"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["runs"] == 25  # 24 ok + 1 diverged, from both sessions; the failed trial is left out
    assert len(fit["cells"]) == 12
    assert "2 session(s)" in fit["source"]
    assert fit["frontier"]["slope"] < 0
    client = MlflowClient(tracking_uri=uri)
    for parent in parents:
        names = {Path(a.path).name for a in client.list_artifacts(parent, "analysis")}
        assert {"report.md", "fit.json", "loss_vs_compute.png", "lr_vs_epochs.png", "optimal_allocation.png"} <= names
    assert "parent run(s)" in capsys.readouterr().out


def test_plan_from_an_experiment(store: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = store
    # exit 0 (a forecast) or 3 (a bound: past the measured budgets), never 2; the runs are listed either way
    assert main(["plan", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--budget", "1e11",
                 "--bootstrap", "0"]) in (0, 3)
    assert "runs that spend the budget" in capsys.readouterr().out


def test_unknown_experiment_is_one_line_exit_2(store: tuple[str, list[str]], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = store
    out = tmp_path / "o"
    assert main(["analyze", "--experiment", "nope", "--tracking-uri", uri, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--experiment" in err[0] and "'nope'" in err[0]
    assert not out.exists()


def test_a_mistyped_sqlite_store_is_an_error_and_creates_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}"
    assert main(["analyze", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tracking-uri" in err[0]
    assert not (tmp_path / "typo").exists()


def fill_two_recipes(uri: str, artifacts: Path) -> None:
    """One experiment, three sweeps: two seeds of an SGD study and one AdamW sweep of the same models."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("mixed", artifact_location=artifacts.as_uri())
    s = Surface()
    for sweep, optim, seed in (("sgd-s0", "sgd", 0), ("sgd-s1", "sgd", 1), ("vit-adamw", "adamw", 0)):
        parent = client.create_run(exp, run_name=sweep, tags={Tag.KIND: Tag.KIND_SWEEP, Tag.STUDY: sweep}).info.run_id
        for n, model in ((10_000, "m0"), (30_000, "m1"), (100_000, "m2")):
            for d in (0.5, 1, 2, 4):
                for lr in (0.2, 0.4):
                    loss = s.loss(n, d) * (1 + s.curvature * math.log(lr / s.best_lr(n, d)) ** 2) * (1 + 0.01 * seed)
                    run = client.create_run(exp, tags={Tag.PARENT: parent, Tag.KIND: Tag.KIND_TRIAL,
                                                       Tag.CELL: cell_name(model, d), Tag.STATUS: "ok"})
                    client.log_batch(run.info.run_id,
                                     metrics=[Metric(M.VAL_LOSS, loss, 0, 1), Metric(M.FLOPS, s.k * n * d, 0, 1)],
                                     params=[Param("model", model), Param("model_params", str(n)),
                                             Param("epochs", str(d)), Param("lr", str(lr)), Param("seed", str(seed)),
                                             Param("optim.name", optim), Param("data.dataset", "fashion_mnist")])


def test_sweeps_of_different_recipes_in_one_experiment_are_not_pooled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fill_two_recipes(uri, tmp_path / "artifacts")
    capsys.readouterr()  # MLflow's lines about creating the store
    out = tmp_path / "out"
    assert main(["analyze", "--experiment", "mixed", "--tracking-uri", uri, "--out", str(out), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "--experiment" in err[0] and "2 recipes" in err[0] and "--sweep" in err[0]
    assert "sgd-s0, sgd-s1 (optim.name=sgd)" in err[0] and "vit-adamw (optim.name=adamw)" in err[0]
    assert "data.dataset" not in err[0]  # only what differs
    assert not out.exists()
    # the two seeds of the SGD study pool (a glob picks both); the AdamW sweep alone is a study too
    assert main(["analyze", "--experiment", "mixed", "--sweep", "sgd-*", "--tracking-uri", uri, "--out", str(out),
                 "--bootstrap", "0"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["runs"] == 48 and len(fit["cells"]) == 12
    # one sweep picked out of the mix plans (a forecast, or a bound past the measured epochs: exit 3)
    assert main(["plan", "--experiment", "mixed", "--sweep", "vit-adamw", "--tracking-uri", uri, "--budget", "1e11",
                 "--bootstrap", "0"]) in (0, 3)
    capsys.readouterr()
    assert main(["analyze", "--experiment", "mixed", "--sweep", "resnet*", "--tracking-uri", uri,
                 "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sweep" in err[0] and "its sweeps: sgd-s0, sgd-s1, vit-adamw" in err[0]
    # `raysweep table` exports one study too
    assert main(["table", "--experiment", "mixed", "--tracking-uri", uri, "--out", str(tmp_path / "t.csv")]) == 2
    assert "2 recipes" in capsys.readouterr().err
    assert main(["table", "--experiment", "mixed", "--sweep", "vit-*", "--tracking-uri", uri,
                 "--out", str(tmp_path / "t.csv")]) == 0
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 1 + 24
