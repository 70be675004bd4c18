"""A fine-tuning trial's process killed (SIGKILL) mid-epoch: it resumes from its latest checkpoint and
ends bit-identical to an uninterrupted run of the same unit, having read the same repeated, augmented
batches in the same order (the data-order digest covers repeated augmentation's copies and crops).

The pre-training is recorded without Ray (`tests.finetune.pretraining`: real checkpoint files); the
reference and the killed run are `raysweep finetune` processes in local mode (Tune restarts the trial
process), each one checkpoint (nfnet_t0@1 at its best LR), one seed, one LR, no baseline, with
repeated augmentation k=2 (so k in (1, 2): two trials a run; the k=2 one is killed, by its pid).
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysweep.core.records import FinetuneKey, M, Tag
from tests.faults.helpers import duplicated_steps, start, wait_for
from tests.finetune.pretraining import record_pretraining, space_dict

pytestmark = pytest.mark.slow

EPOCHS = 2
EVERY_STEPS = 4
STEPS_PER_EPOCH = 1797 * 9 // 10 // 64  # digits, val_fraction 0.1, batch 64: 25


def write(tmp: Path, name: str) -> Path:
    raw = space_dict(rungs=("nfnet_t0",), top={
        "name": name, "checkpoint": {"every_steps": EVERY_STEPS}, "search": {"searcher": "grid"},
        "resources": {"device": "cpu", "workers_per_trial": 0, "cpus_per_worker": 1, "max_failures": 2,
                      "concurrent_trials": 2}},
        # 16px (pre-trained at 32; an NFNet takes either): a quarter of the compute, the same code
        data={"dataset": "digits", "val_fraction": 0.1, "image_size": 16}, epochs=EPOCHS,
        lr={"base": 0.4, "factor": 2, "low": 0.4, "high": 0.4}, seeds=1, baseline=False, repeated_augmentation=2,
        select={"rule": "cells", "cells": ["nfnet_t0@1"]}, experiment=f"ft-{name}")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def runs(uri: str, experiment: str) -> dict[int, Any]:
    """The fine-tuning child runs of `experiment`, by repeated augmentation's k."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    found = client.search_runs([exp.experiment_id], max_results=100,
                               filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_FINETUNE_TRIAL}'")
    return {FinetuneKey.from_token(r.data.tags[Tag.FINETUNE_KEY]).repeats: r for r in found}


def final(uri: str, experiment: str) -> dict[int, dict[str, float]]:
    out = {}
    for k, run in runs(uri, experiment).items():
        run = MlflowClient(uri).get_run(run.info.run_id)
        assert run.data.tags[Tag.STATUS] == "ok" and run.info.status == "FINISHED", (k, run.data.tags)
        assert duplicated_steps(uri, run.info.run_id) == {}, k
        m = run.data.metrics
        out[k] = {"loss": m[M.FT_LOSS], "top1": m[M.FT_TOP1], "examples": m[M.EXAMPLES],
                  "digest": m[M.DATA_DIGEST], "restarts": m.get(M.RESTARTS, 0)}
    return out


def test_a_killed_finetuning_trial_resumes_to_the_same_loss_and_digest(tmp_path: Path) -> None:
    uri = record_pretraining(tmp_path, losses={("nfnet_t0", 1.0): 2.0})
    common = ["--tracking-uri", uri, "--results", str(tmp_path / "results"), "--quiet"]
    ref = start(["finetune", str(write(tmp_path, "ref")), *common], tmp_path, tmp_path / "ref.log")
    assert ref.wait(timeout=600) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    reference = final(uri, "ft-ref")
    assert sorted(reference) == [1, 2]

    # past the first checkpoint, in the first half of the budget: the poll that sees the step and the
    # kill that follows take a moment, and a kill after the final report has nothing to resume
    kill_at = random.Random(os.getpid()).randrange(EVERY_STEPS + 1, EPOCHS * STEPS_PER_EPOCH // 2)
    proc = start(["finetune", str(write(tmp_path, "kill")), *common], tmp_path, tmp_path / "kill.log")
    client = MlflowClient(uri)

    def reached() -> bool:
        run = runs(uri, "ft-kill").get(2)
        if run is None:
            return False
        return max((m.step for m in client.get_metric_history(run.info.run_id, M.TRAIN_LOSS)), default=0) >= kill_at

    wait_for(reached, 400, f"step {kill_at}")
    records = list((tmp_path / "results" / "train").glob("kill*_k2_a0-*/hosts/rank-0.json"))
    assert len(records) == 1, "no host record of the running k=2 trial"
    os.kill(json.loads(records[0].read_text())["pid"], signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, (tmp_path / "kill.log").read_text()[-3000:]
    out = (tmp_path / "kill.log").read_text()

    killed = final(uri, "ft-kill")
    assert killed[2]["restarts"] >= 1, out[-3000:]  # it did resume from a checkpoint
    for k in (1, 2):  # the k=1 trial ran alongside, untouched
        for what in ("loss", "top1", "examples", "digest"):
            assert killed[k][what] == reference[k][what], (k, what)  # to the last bit
    assert killed[1]["digest"] != killed[2]["digest"]  # the digest sees the repeats
    assert "Traceback" not in out, out[-3000:]
