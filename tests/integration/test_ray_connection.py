"""`raysweep run` on a machine where Ray already runs, or once ran: it joins a live head started with
`ray start --head` (token auth on) without passing resources, ignores the `ray_current_cluster`
file a crashed head left behind, and finds resources the cluster cannot hold before it creates an
MLflow experiment or an Optuna study."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.ray_head import free_port, start_head, stop_head

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = {  # one trial of a few steps
    "name": "join",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
    "epochs": [0.5],
    "lr": {"base": 0.4, "factor": 2, "low": 0.4, "high": 0.4},
    "data": {"dataset": "mnist5k", "train_subset": 256},
    "batch_size": 64,
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 1},
    "search": {"searcher": "grid"},
    "tracking": {"experiment": "join"},
}


def run_cli(tmp_path: Path, env: dict[str, str], *extra: str, space: dict = TINY) -> subprocess.CompletedProcess:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_TMPDIR")}
    full.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "raysweep", "run", str(path), "--results", str(tmp_path / "res"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra],
        check=False, capture_output=True, text=True, cwd=tmp_path, env=full, timeout=600,
    )


def test_joins_a_running_head_without_passing_resources(tmp_path: Path) -> None:
    head = start_head()
    try:
        # Only the head's temp folder and its token: no RAY_ADDRESS, no RAY_AUTH_MODE. Ray finds the
        # cluster through ray_current_cluster and turns token auth on because a token is at hand.
        proc = run_cli(tmp_path, head.env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert f"running on the running local Ray cluster at {head.gcs_address}" in out
        # the driver ran inside the head's session: its core-driver log carries the sweep's pid
        assert list(head.session_logs.glob("python-core-driver-*.log")), sorted(p.name for p in head.session_logs.iterdir())
        assert "1 trials in" in out
        assert head.proc.poll() is None  # and it left the head running
    finally:
        stop_head(head)


def test_a_stale_ray_current_cluster_is_ignored(tmp_path: Path) -> None:
    tmpdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"rss{os.getpid()}"
    (tmpdir / "ray").mkdir(parents=True, exist_ok=True)
    dead = f"127.0.0.1:{free_port()}"  # what a crashed head leaves: an address where nothing listens
    (tmpdir / "ray" / "ray_current_cluster").write_text(dead)
    try:
        proc = run_cli(tmp_path, {"RAY_TMPDIR": str(tmpdir)})
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert f"a Ray cluster of its own on this machine (ignoring {dead} in ray_current_cluster" in out
        assert "1 trials in" in out
    finally:
        import shutil

        shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.mark.parametrize("patch, key", [({"cpus_per_worker": 64}, "resources.cpus_per_worker"),
                                        ({"device": "cuda", "gpus_per_worker": 1}, "resources.gpus_per_worker")])
def test_resources_the_cluster_lacks_create_nothing(tmp_path: Path, patch: dict, key: str) -> None:
    space = {**TINY, "resources": {**TINY["resources"], **patch}, "search": {"searcher": "monotone"}}
    proc = run_cli(tmp_path, {"RAY_ADDRESS": "local"}, space=space)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert err[-1].startswith("raysweep: error: ") and f": {key}: expected a trial to fit the cluster's" in err[-1]
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow experiment
    assert not (tmp_path / "res" / "join" / "optuna.db").exists()  # no Optuna study


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = run_cli(tmp_path, {"RAY_ADDRESS": dead})
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert err[-1] == (f"raysweep: error: $RAY_ADDRESS: expected a reachable Ray cluster, got RAY_ADDRESS={dead!r}: "
                       "nothing answers there")
    assert not (tmp_path / "mlflow.db").exists()
