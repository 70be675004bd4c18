"""A driver killed (SIGKILL, with its whole process group) mid-sweep, then `--resume`: nothing lost,
nothing duplicated, no trace in MLflow. Real processes, a real local Ray cluster, real MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.core.records import M, Tag
from tests.faults.helpers import (
    child_runs,
    duplicated_steps,
    kill_group,
    results_by_key,
    start,
    sweep_runs,
    wait_for,
    write_space,
)

pytestmark = pytest.mark.slow


def test_killed_driver_resumes_under_its_parent_with_one_run_per_trial(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref_space = write_space(tmp_path, "ref")
    space = write_space(tmp_path, "killed")
    common = ["--tracking-uri", uri, "--results", str(tmp_path / "results"), "--quiet"]

    ref = start(["run", str(ref_space), *common], tmp_path, tmp_path / "ref.log")
    assert ref.wait(timeout=900) == 0, (tmp_path / "ref.log").read_text()[-3000:]

    first = start(["run", str(space), *common], tmp_path, tmp_path / "first.log")

    def in_flight_with_checkpoint() -> bool:
        return any(r.info.status == "RUNNING" and r.data.metrics.get(M.EXAMPLES, 0) >= 20 * 64
                   for r in child_runs(uri, "killed"))

    try:
        wait_for(in_flight_with_checkpoint, 600, "a trial in flight past its first mid-epoch checkpoint")
    finally:
        kill_group(first)
    at_kill = [r for r in child_runs(uri, "killed") if r.info.status == "RUNNING"]
    # the kill really left trials in flight; those past a checkpoint must continue from it (one that
    # had only just started when the kill came, under load, has none and rightly starts again)
    checkpointed = {r.data.tags[Tag.TRIAL_KEY] for r in at_kill if r.data.metrics.get(M.EXAMPLES, 0) >= 20 * 64}
    assert checkpointed

    second = start(["run", str(space), *common, "--resume"], tmp_path, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]

    parents = sweep_runs(uri, "killed")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # one sweep, one parent
    runs = child_runs(uri, "killed")
    keys = [r.data.tags[Tag.TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys))  # exactly one child run per (cell, lr, attempt)
    assert all(r.info.status != "RUNNING" for r in runs)
    assert all(r.data.tags[Tag.PARENT] == parents[0].info.run_id for r in runs)
    for r in runs:
        assert duplicated_steps(uri, r.info.run_id) == {}, r.data.tags[Tag.TRIAL_KEY]
    resumed = [r for r in runs if r.data.tags[Tag.TRIAL_KEY] in checkpointed and r.data.tags[Tag.STATUS] == "ok"]
    assert resumed and all(r.data.metrics[M.RESTARTS] >= 1 for r in resumed)  # continued from a checkpoint

    # the same trials, the same results to the last bit as the uninterrupted sweep
    assert results_by_key(uri, "killed") == results_by_key(uri, "ref")
