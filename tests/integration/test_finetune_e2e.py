"""Fine-tuning end to end on a real local Ray cluster: pre-train two tiny trials (`raysweep run`),
fine-tune from their kept checkpoints (`raysweep finetune`), and find in MLflow the linked runs,
their metrics and Figure 1 (`raysweep analyze`)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysweep.cli import main
from raysweep.core.records import FinetuneKey, M, Tag, TrialKey

pytestmark = pytest.mark.slow

SPACE = {
    "name": "pre_e2e",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
    "epochs": [1],
    "lr": {"base": 0.2, "factor": 2, "low": 0.2, "high": 0.2},
    "data": {"dataset": "mnist5k", "train_subset": 640},
    "batch_size": 64,
    "optim": {"agc_clip": 0.16},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
    "search": {"searcher": "grid"},
    "tracking": {"experiment": "pre-e2e"},
    "finetune": {
        "data": {"dataset": "digits", "val_fraction": 0.25},
        "epochs": 1,
        "lr": {"base": 0.1, "factor": 2, "low": 0.1, "high": 0.1},
        "seeds": 1,
        "repeated_augmentation": 2,
        "select": {"rule": "frontier", "neighbours": True},
        "experiment": "ft-e2e",
    },
}


def by_kind(client: MlflowClient, experiment: str, kind: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{kind}'", max_results=500)


def test_pretrain_finetune_analyze(ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--tracking-uri", uri, "--results", str(tmp_path / "results"), "--quiet"]
    assert main(["run", str(space), *common]) == 0
    assert main(["finetune", str(space), *common]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 checked" in out and "fine-tuning trials in" in out

    client = MlflowClient(uri)
    (pre_parent,) = by_kind(client, "pre-e2e", Tag.KIND_SWEEP)
    pre = {r.info.run_id: r for r in by_kind(client, "pre-e2e", Tag.KIND_TRIAL)}
    assert len(pre) == 2 and all(r.data.tags.get(Tag.CHECKPOINT) for r in pre.values())
    (ft_parent,) = by_kind(client, "ft-e2e", Tag.KIND_FINETUNE_SWEEP)
    assert ft_parent.data.tags[Tag.PRETRAINING_PARENTS] == pre_parent.info.run_id
    children = by_kind(client, "ft-e2e", Tag.KIND_FINETUNE_TRIAL)
    # two rungs on the frontier (each the other's neighbour) and their baselines, each with k in (1, 2)
    assert len(children) == 8
    from_ckpt = [r for r in children if Tag.SOURCE_RUN in r.data.tags]
    assert len(from_ckpt) == 4 and {r.data.tags[Tag.SOURCE_RUN] for r in from_ckpt} == set(pre)
    for run in children:
        tags, m = run.data.tags, run.data.metrics
        assert tags[Tag.PARENT] == ft_parent.info.run_id and tags[Tag.STATUS] == "ok"
        assert 0.0 <= m[M.FT_TOP1] <= 1.0 and math.isfinite(m[M.FT_LOSS])
        assert m[M.FLOPS] > 0 and m[M.CORE_HOURS] > 0
        key = FinetuneKey.from_token(tags[Tag.FINETUNE_KEY])
        assert key.repeats in (1, 2)
        if Tag.SOURCE_RUN in tags:  # linked to its source: run, trial key and pre-training cost
            source = pre[tags[Tag.SOURCE_RUN]]
            assert tags[Tag.SOURCE_TRIAL_KEY] == source.data.tags[Tag.TRIAL_KEY] == key.source
            assert TrialKey.from_token(key.source).model == run.data.params["model"]
            assert m[M.PRETRAIN_FLOPS] == source.data.metrics[M.FLOPS]
            assert m[M.PRETRAIN_CORE_HOURS] == source.data.metrics[M.CORE_HOURS]
        else:
            assert key.baseline and m[M.PRETRAIN_FLOPS] == 0.0

    assert main(["analyze", "--experiment", "ft-e2e", "--tracking-uri", uri, "--out", str(tmp_path / "ana")]) == 0
    figure = tmp_path / "ana" / "top1_vs_compute.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Finding 4" in (tmp_path / "ana" / "finetune_report.md").read_text()
    assert (tmp_path / "ana" / "report.md").read_text() == (tmp_path / "ana" / "finetune_report.md").read_text()
    logged = {a.path for a in client.list_artifacts(ft_parent.info.run_id, "analysis")}
    assert "analysis/top1_vs_compute.png" in logged and "analysis/finetune_report.md" in logged
