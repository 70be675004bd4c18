"""Results and checkpoints in a bucket: `raysweep run --results s3://BUCKET/PREFIX` against a real
S3-compatible server (moto, IAM-checked keys, tests/object_stores.py), with the endpoint and the
keys in the environment as a cluster would have them.

One tiny sweep (one trial) ends ok; its Ray Train and Tune folders and its keyed checkpoint copies
are in the bucket; MLflow's kept-checkpoint tag is the s3:// URI, whose SHA-256 verifies and whose
state loads through raysweep's filesystem layer (as fine-tuning reads it). The secret key, in the
environment and quoted by mistake in the sweep's description, never reaches the console, MLflow's
params and tags, the tracking journal or Ray's driver log. A bucket that does not exist, and a
secret key the store refuses, are one line and exit 2 before anything is launched.

The same sweep runs on the GCS emulator (gcp-storage-emulator, `STORAGE_EMULATOR_HOST`), checkpoints in
its bucket. A sweep in the bucket whose driver is killed (SIGKILL to its process group, Ray's processes
with it) resumes with `--resume --results s3://...` from the same working folder: the finished trial is
not run again, the cut-off one continues from its checkpoint in the bucket, one MLflow parent and one
child per trial. From another working folder `--resume` is one line and exit 2 before Ray starts: the
Optuna SQLite study stays with the driver that started the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.core.records import M, Tag, TrialStatus
from tests.object_stores import BUCKET

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SPACE = {
    "name": "s3res",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
    "epochs": [0.5],
    "lr": {"base": 0.4, "factor": 2, "low": 0.4, "high": 0.4},
    "data": {"dataset": "mnist5k", "train_subset": 256},
    "batch_size": 64,
    "optim": {"agc_clip": 0.16},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 1},
    "search": {"searcher": "grid"},
    "tracking": {"experiment": "results-on-s3"},
}


def _argv(tmp_path: Path, results: str, space: dict[str, Any], *extra: str) -> tuple[list[str], dict[str, str]]:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    full |= {"PYTHONPATH": str(ROOT), "RAY_ADDRESS": "local"}  # a Ray cluster of its own, given this env
    argv = [sys.executable, "-m", "raysweep", "run", str(path), "--results", results, "--quiet",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]
    return argv, full


def _run(tmp_path: Path, env: dict[str, str], results: str, *extra: str,
         space: dict[str, Any] = SPACE) -> subprocess.CompletedProcess[str]:
    argv, full = _argv(tmp_path, results, space, *extra)
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=full | env, timeout=600,
                          check=False)


@pytest.fixture(params=["s3", "gs"])
def bucket(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """(protocol, the environment that reaches its server): the moto S3 server or the GCS emulator,
    each through the production code path (an endpoint override in the environment)."""
    if request.param == "s3":
        return "s3", request.getfixturevalue("s3")
    request.getfixturevalue("gcs")
    return "gs", {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}


def test_preflight_refuses_a_missing_bucket_and_refused_keys_in_one_line(
        s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.cli import main
    from raysweep.data import store

    secret = s3["AWS_SECRET_ACCESS_KEY"]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    monkeypatch.chdir(tmp_path)
    for wrong, results, needle in ((None, "s3://no-such-bucket/x", "no such bucket"),
                                   (secret[::-1], f"s3://{BUCKET}/x", "refused the credentials")):
        if wrong:
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        store.forget_clients()
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        code = main(["run", str(space), "--results", results, "--tracking-uri", uri])
        out, err = capsys.readouterr()
        assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
        assert err.startswith("raysweep: error: --results: ") and needle in err, err
        assert secret not in out + err and secret[::-1] not in out + err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # nothing created, nothing launched


def test_a_sweep_keeps_its_results_and_checkpoints_in_the_bucket(bucket: tuple[str, dict[str, str]],
                                                                  tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from raysweep.data import store
    from raysweep.train.kept import KeptCheckpoint, read_kept_state, verify_checkpoint

    protocol, env = bucket
    secret = env.get("AWS_SECRET_ACCESS_KEY")  # the emulator takes no key: nothing to mask there
    results = f"{protocol}://{BUCKET}/sweeps/run1"
    proc = _run(tmp_path, env, results, *(("--set", f"description=key {secret} quoted by mistake") if secret else ()))
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]
    assert "nfnet_t0" in proc.stdout and "1 trials in" in proc.stdout, proc.stdout  # the summary table read back

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("results-on-s3").experiment_id])
    (trial,) = [r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_TRIAL]
    assert trial.data.tags[Tag.STATUS] == TrialStatus.OK.value
    kept = KeptCheckpoint(trial.data.tags[Tag.CHECKPOINT], trial.data.tags[Tag.CHECKPOINT_SHA256])
    assert kept.path.startswith(f"{results}/train/") and "/checkpoints/checkpoint_" in kept.path, kept.path

    fs = store.filesystem(protocol)
    under = fs.find(f"{BUCKET}/sweeps/run1")
    assert any("/tune/" in p for p in under) and any(p.endswith("/hosts/rank-0.json") for p in under), under
    assert verify_checkpoint(kept, run=trial.info.run_id) == kept.path
    assert read_kept_state(kept)["step"] > 0  # what fine-tuning's from_checkpoint loads

    assert any("/checkpoints/checkpoint_" in p and p.endswith("/state.sha256") for p in under), under
    driver = tmp_path / "raysweep_results" / protocol / BUCKET / "sweeps" / "run1" / "s3res"
    # the journal and Ray's driver log stay local (and a searcher's SQLite study: grid keeps none)
    assert (driver / "tracking-journal.jsonl").is_file() and (driver / "ray-driver.log").is_file()
    if secret is None:
        return
    written = [console]
    for run in runs:
        written += [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
    written += [p.read_text(errors="replace") for p in driver.rglob("*") if p.is_file() and p.suffix != ".db"]
    (parent,) = [r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_SWEEP]
    assert parent.data.params["description"] == "key *** quoted by mistake"
    assert secret not in "\n".join(written)


RESUME = SPACE | {
    "name": "s3resume",
    "epochs": [0.25, 4],  # one LR: trial 1 (5 steps) settles its cell, then trial 2 (80 steps) is cut off
    "data": {"dataset": "mnist5k", "train_subset": 1280},
    "search": {"searcher": "monotone"},
    "checkpoint": {"every_steps": 4},
    "tracking": {"experiment": "resume-on-s3"},
}


def test_a_killed_sweep_in_the_bucket_resumes_from_its_checkpoints_there(
        s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    from raysweep.cli import main
    from raysweep.data import store
    from raysweep.train.kept import KeptCheckpoint, verify_checkpoint
    from tests.faults.helpers import child_runs, duplicated_steps, sweep_runs, wait_for

    results = f"s3://{BUCKET}/sweeps/resume"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fs = store.filesystem("s3")
    argv, env = _argv(tmp_path, results, RESUME)
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)

        def long_trial_checkpointed() -> bool:  # a digest is written last: the copy is whole
            if first.poll() is not None:
                raise AssertionError((tmp_path / "first.log").read_text()[-3000:])
            train = f"{BUCKET}/sweeps/resume/train"
            found = fs.find(train) if fs.exists(train) else []
            return any("_e4_" in p and "/checkpoints/checkpoint_" in p and p.endswith("/state.sha256") for p in found)

        try:
            wait_for(long_trial_checkpointed, 600, "the 4-epoch trial's first checkpoint in the bucket")
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
            first.wait(timeout=60)
            time.sleep(2)
    before = {r.data.tags[Tag.TRIAL_KEY]: r for r in child_runs(uri, "resume-on-s3")}
    cut_off = {k for k, r in before.items() if r.info.status == "RUNNING"}
    finished = {k: r for k, r in before.items() if r.info.status == "FINISHED"}
    assert len(cut_off) == 1 and len(finished) == 1, {k: r.info.status for k, r in before.items()}
    driver = tmp_path / "raysweep_results" / "s3" / BUCKET / "sweeps" / "resume" / "s3resume"
    assert (driver / "optuna.db").is_file()  # the SQLite study stays with the driver

    # a new driver in another working folder has no study to resume: one line, exit 2, before Ray
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    code = main(["run", str(tmp_path / "space.yaml"), "--results", results, "--tracking-uri", uri, "--resume"])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("raysweep: error: --resume: no earlier study of sweep 's3resume' in this working folder")
    assert "search.storage" in err and results in err and s3["AWS_SECRET_ACCESS_KEY"] not in out + err
    assert list(elsewhere.iterdir()) == []  # nothing created

    argv, env = _argv(tmp_path, results, RESUME, "--resume")
    second = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=False)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]

    (parent,) = sweep_runs(uri, "resume-on-s3")  # one sweep, one parent, closed
    assert parent.info.status == "FINISHED"
    runs = child_runs(uri, "resume-on-s3")
    keys = [r.data.tags[Tag.TRIAL_KEY] for r in runs]
    assert sorted(keys) == sorted(before) and len(set(keys)) == 2  # no trial run twice, none new
    by_key = {r.data.tags[Tag.TRIAL_KEY]: r for r in runs}
    for key, r in by_key.items():
        assert r.info.status == "FINISHED" and r.data.tags[Tag.STATUS] == TrialStatus.OK.value, key
        assert r.data.tags[Tag.PARENT] == parent.info.run_id
        assert duplicated_steps(uri, r.info.run_id) == {}, key
    (done,) = finished
    assert by_key[done].info.end_time == finished[done].info.end_time  # the finished trial was not rerun
    (resumed,) = (by_key[k] for k in cut_off)
    assert resumed.data.metrics[M.RESTARTS] >= 1  # it continued from its checkpoint in the bucket
    assert resumed.data.metrics[M.EXAMPLES] == 4 * 1280  # its whole budget (4 epochs of train_subset), once
    kept = KeptCheckpoint(resumed.data.tags[Tag.CHECKPOINT], resumed.data.tags[Tag.CHECKPOINT_SHA256])
    assert kept.path.startswith(f"{results}/train/") and verify_checkpoint(kept, run=resumed.info.run_id)

    (study,) = optuna.get_all_study_names(f"sqlite:///{driver / 'optuna.db'}")
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{driver / 'optuna.db'}").trials
    assert [t.state.name for t in trials].count("COMPLETE") == 2, [(t.params, t.state.name) for t in trials]
