"""A training process killed (SIGKILL) mid-epoch at a random step: the trial resumes from its latest
checkpoint and ends bit-identical to an uninterrupted run, having read every example exactly as often
and in the same order (the data-order digest). Worker-group mode (Ray Train restarts the group) and
local mode (Tune restarts the trial process). Real processes killed by their pid.

Both modes are held to one uninterrupted run, in local mode: a worker group of one runs the same loop
with the same seed, data order and threads (no DDP at world 1), so it ends bit-identical to it too."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag
from tests.faults.helpers import child_runs, duplicated_steps, start, wait_for, write_space

pytestmark = pytest.mark.slow

TRAIN_SUBSET = 4096  # 64 steps an epoch at batch 64: a checkpoint every 7, the kill somewhere in epoch 1


def _over(workers: int) -> dict[str, Any]:
    return {"epochs": [2], "lr": {"base": 0.4, "low": 0.4, "high": 0.4}, "search": {"searcher": "grid"},
            "resources": {"device": "cpu", "workers_per_trial": workers, "max_failures": 2, "concurrent_trials": 1},
            "checkpoint": {"every_steps": 7}, "data": {"dataset": "mnist5k", "train_subset": TRAIN_SUBSET}}


def _final(uri: str, experiment: str) -> dict[str, float]:
    (run,) = child_runs(uri, experiment)
    assert run.data.tags[Tag.STATUS] == "ok" and run.info.status == "FINISHED"
    assert duplicated_steps(uri, run.info.run_id) == {}
    m = run.data.metrics
    return {"val/loss": m[M.VAL_LOSS], "examples": m[M.EXAMPLES], "digest": m[M.DATA_DIGEST],
            "restarts": m.get(M.RESTARTS, 0), "run_id": run.info.run_id}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The uninterrupted run, once for both modes (local mode: the cheaper one)."""
    tmp = tmp_path_factory.mktemp("ref")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    ref = start(["run", str(write_space(tmp, "ref", **_over(0))), "--tracking-uri", uri,
                 "--results", str(tmp / "results")], tmp, tmp / "ref.log")
    assert ref.wait(timeout=900) == 0, (tmp / "ref.log").read_text()[-3000:]
    return _final(uri, "ref")


@pytest.mark.parametrize("workers", [1, 0], ids=["worker-group", "local-mode"])
def test_killed_training_process_resumes_bit_identical(tmp_path: Path, workers: int,
                                                        reference: dict[str, float]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--tracking-uri", uri, "--results", str(tmp_path / "results")]
    steps_per_epoch = TRAIN_SUBSET // 64  # train_subset counts training examples (val is held out before)
    # past the first checkpoint, and early in the first epoch of two (at least 72 of the 128 steps left
    # when the poll sees the step): the poll and the kill that follows take a moment, and a kill after
    # the final report has nothing to resume
    kill_at = random.Random(os.getpid()).randrange(8, steps_per_epoch - 7)
    proc = start(["run", str(write_space(tmp_path, "kill", **_over(workers))), *common], tmp_path,
                 tmp_path / "kill.log")
    client = MlflowClient(uri)

    def reached() -> bool:
        runs = child_runs(uri, "kill")
        if not runs:
            return False
        hist = client.get_metric_history(runs[0].info.run_id, M.TRAIN_LOSS)
        return max((m.step for m in hist), default=0) >= kill_at

    wait_for(reached, 600, f"step {kill_at}")
    records = list((tmp_path / "results" / "train").glob("kill-*/hosts/rank-0.json"))
    assert records, "no host record of the running trial"
    pid = json.loads(records[0].read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=900) == 0, (tmp_path / "kill.log").read_text()[-3000:]
    out = (tmp_path / "kill.log").read_text()

    killed = _final(uri, "kill")
    assert killed["restarts"] >= 1  # it did resume from a checkpoint
    assert killed["val/loss"] == reference["val/loss"]  # to the last bit
    assert killed["examples"] == reference["examples"]
    assert killed["digest"] == reference["digest"]  # the same examples in the same order
    lost = [line for line in out.splitlines() if " lost " in line]
    assert len(lost) == 1 and "restart 1 of 2" in lost[0], out[-3000:]  # one line, not a dump
    assert "Traceback" not in out, out[-3000:]
