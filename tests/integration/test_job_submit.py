"""`ray job submit`, end to end, with the command cluster/README.md shows: a real head on 127.0.0.1
with token auth, started from the project's environment; the smoke sweep submitted from the
repository; SUCCEEDED; its runs in MLflow; the head stopped by its process id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.ray_head import RAY, start_head, stop_head

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The walkthrough's command, word for word (RAY_ADDRESS and the token come from the environment).
README_COMMAND = "ray job submit --working-dir . -- python -m raysweep run search_spaces/smoke.yaml"


def test_the_readme_command_is_the_one_tested() -> None:
    assert README_COMMAND in (ROOT / "cluster" / "README.md").read_text()


def test_ray_job_submit_runs_the_smoke_sweep_into_mlflow(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    venv_bin = str(Path(sys.executable).parent)
    # The head as a cluster file starts it: the project's environment first on PATH (so that the
    # entrypoint's `python` is the project's), and where MLflow and the results live in its environment.
    # PYTHONPATH is dropped: raysweep must come from the uploaded working directory.
    head = start_head(dashboard=True, head_env={
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MLFLOW_TRACKING_URI": tracking,
        "RAYSWEEP_RESULTS": str(tmp_path / "results"),
    }, drop_env=("PYTHONPATH", "MLFLOW_TRACKING_URI", "RAYSWEEP_OPTUNA_STORAGE"))
    try:
        assert head.dashboard_url is not None
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_TMPDIR")}
        env.update(RAY_ADDRESS=head.dashboard_url, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.env["RAY_AUTH_TOKEN"],
                   PATH=f"{venv_bin}:{env.get('PATH', '')}")
        argv = README_COMMAND.split()
        argv[0] = str(RAY)
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
        job = re.search(r"Job '(raysubmit_\w+)' submitted successfully", out)
        assert job, out[-3000:]
        print(out)  # what the walkthrough shows (pytest -s)
        # the job API's own record, asked with the token the way any client does
        request = urllib.request.Request(f"{head.dashboard_url}/api/jobs/{job.group(1)}",
                                         headers={"Authorization": f"Bearer {head.env['RAY_AUTH_TOKEN']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.load(response)["status"] == "SUCCEEDED"
        assert "running on the Ray cluster at RAY_ADDRESS=" in out  # the driver joined the head, resources untouched
        assert "2 trials in" in out

        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("raysweep-smoke")
        assert exp is not None
        runs = client.search_runs([exp.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert sorted(float(r.data.params["lr"]) for r in children) == [0.2, 0.4]
        assert all(r.info.status == "FINISHED" and "val/loss" in r.data.metrics for r in children)
        assert (tmp_path / "results" / "smoke").is_dir()  # RAYSWEEP_RESULTS from the head's environment
    finally:
        stop_head(head)
