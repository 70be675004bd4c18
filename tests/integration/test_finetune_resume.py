"""A fine-tuning sweep with the monotone searcher, stopped by `--max-trials` and continued with
`raysweep finetune --resume`: the same study and MLflow parent run go on to the end, and no finished
fine-tuning trial runs again. On the tests' local Ray cluster; the pre-training is recorded without
Ray (`tests.finetune.pretraining`: real checkpoint files)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from raysweep.cli import main
from raysweep.core.records import Tag
from tests.finetune.pretraining import record_pretraining, write_space

pytestmark = pytest.mark.slow


def by_kind(uri: str, experiment: str, kind: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{kind}'", max_results=100)


def test_a_stopped_monotone_finetuning_sweep_resumes_without_running_finished_trials_again(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path, losses={("nfnet_t0", 1.0): 2.0})
    space = write_space(
        tmp_path, rungs=("nfnet_t0",), top={
            "name": "ftresume", "search": {"searcher": "grid"},
            "resources": {"device": "cpu", "workers_per_trial": 0, "cpus_per_worker": 1, "concurrent_trials": 1}},
        # one unit (one checkpoint, seed, k=1), the paper's 2-trial rule over 3 LRs; 12 steps a trial at 16px
        data={"dataset": "digits", "image_size": 16}, epochs=0.5, lr={"base": 0.2, "factor": 2, "low": 0.1, "high": 0.4},
        searcher="monotone", seeds=1, baseline=False, select={"rule": "cells", "cells": ["nfnet_t0@1"]},
        experiment="ft-resume")
    common = [str(space), "--tracking-uri", uri, "--results", str(tmp_path / "results"), "--quiet"]

    assert main(["finetune", *common, "--max-trials", "1"]) == 0
    first = {r.data.tags[Tag.FINETUNE_KEY]: r.info.run_id
             for r in by_kind(uri, "ft-resume", Tag.KIND_FINETUNE_TRIAL) if r.data.tags.get(Tag.STATUS) == "ok"}
    assert len(first) == 1, first
    (parent,) = by_kind(uri, "ft-resume", Tag.KIND_FINETUNE_SWEEP)

    assert main(["finetune", *common, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 units have a best LR" in out, out[-2000:]
    (again,) = by_kind(uri, "ft-resume", Tag.KIND_FINETUNE_SWEEP)
    assert again.info.run_id == parent.info.run_id  # one sweep, one parent, over both sessions
    ok = [r for r in by_kind(uri, "ft-resume", Tag.KIND_FINETUNE_TRIAL) if r.data.tags.get(Tag.STATUS) == "ok"]
    keys = Counter(r.data.tags[Tag.FINETUNE_KEY] for r in ok)
    assert max(keys.values()) == 1, f"a finished fine-tuning trial ran again: {keys}"
    assert len(keys) >= 2  # the monotone rule's second trial (and more), run by the resumed session
    assert {k: r.info.run_id for r in ok for k in [r.data.tags[Tag.FINETUNE_KEY]] if k in first} == first
    assert all(r.data.tags[Tag.PARENT] == parent.info.run_id for r in ok)
