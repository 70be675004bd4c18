"""Results and checkpoints in a bucket: `raysweep run --results s3://BUCKET/PREFIX` against a real
S3-compatible server (moto, IAM-checked keys, tests/object_stores.py), with the endpoint and the
keys in the environment as a cluster would have them.

One tiny sweep (one trial) ends ok; its Ray Train and Tune folders and its keyed checkpoint copies
are in the bucket; MLflow's kept-checkpoint tag is the s3:// URI, whose SHA-256 verifies and whose
state loads through raysweep's filesystem layer (as fine-tuning reads it). The secret key, in the
environment and quoted by mistake in the sweep's description, never reaches the console, MLflow's
params and tags, the tracking journal or Ray's driver log. A bucket that does not exist, and a
secret key the store refuses, are one line and exit 2 before anything is launched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raysweep.core.records import Tag, TrialStatus
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


def _run(tmp_path: Path, env: dict[str, str], results: str, *extra: str) -> subprocess.CompletedProcess[str]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    full |= env | {"PYTHONPATH": str(ROOT), "RAY_ADDRESS": "local"}  # a Ray cluster of its own, given this env
    argv = [sys.executable, "-m", "raysweep", "run", str(space), "--results", results, "--quiet",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=full, timeout=600, check=False)


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


def test_a_sweep_keeps_its_results_and_checkpoints_in_the_bucket(s3: dict[str, str], tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from raysweep.data import store
    from raysweep.train.kept import KeptCheckpoint, read_kept_state, verify_checkpoint

    secret = s3["AWS_SECRET_ACCESS_KEY"]
    results = f"s3://{BUCKET}/sweeps/run1"
    proc = _run(tmp_path, s3, results, "--set", f"description=key {secret} quoted by mistake")
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("results-on-s3").experiment_id])
    (trial,) = [r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_TRIAL]
    assert trial.data.tags[Tag.STATUS] == TrialStatus.OK.value
    kept = KeptCheckpoint(trial.data.tags[Tag.CHECKPOINT], trial.data.tags[Tag.CHECKPOINT_SHA256])
    assert kept.path.startswith(f"{results}/train/") and "/checkpoints/checkpoint_" in kept.path, kept.path

    fs = store.filesystem("s3")
    under = fs.find(f"{BUCKET}/sweeps/run1")
    assert any("/tune/" in p for p in under) and any(p.endswith("/hosts/rank-0.json") for p in under), under
    assert verify_checkpoint(kept, run=trial.info.run_id) == kept.path
    assert read_kept_state(kept)["step"] > 0  # what fine-tuning's from_checkpoint loads

    driver = tmp_path / "raysweep_results" / "s3" / BUCKET / "sweeps" / "run1" / "s3res"
    # the journal and Ray's driver log stay local (and a searcher's SQLite study: grid keeps none)
    assert (driver / "tracking-journal.jsonl").is_file() and (driver / "ray-driver.log").is_file()
    written = [console]
    for run in runs:
        written += [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
    written += [p.read_text(errors="replace") for p in driver.rglob("*") if p.is_file() and p.suffix != ".db"]
    (parent,) = [r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_SWEEP]
    assert parent.data.params["description"] == "key *** quoted by mistake"
    assert secret not in "\n".join(written)
