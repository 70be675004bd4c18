"""`ray job stop` on a running sweep, end to end: a real token-auth head on 127.0.0.1, a sweep
submitted with `ray job submit`, stopped with `ray job stop` once a trial is running.

`ray job stop` sends SIGTERM to the entrypoint and every process under it, then SIGKILL after
`RAY_JOB_STOP_WAIT_TIME_S` (Ray's default: 3 s). The head's environment sets 30 s, a Kubernetes
pod's default grace period, and the driver must be done within it, timed from the moment the
signal reached it: the cut-off trials closed as `stopped` (KILLED), the parent run closed with its
artifacts, the summary and the resume hint printed, exit code 143. The entrypoint is wrapped in
`sh -c` with a trap only so that the shell outlives the signal and writes the driver's exit code
and time to the job's log. About 130 s on the 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysweep.core.records import Tag, TrialStatus
from tests.integration.ray_head import RAY, RayHead, start_head, stop_head

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTICE = "raysweep: SIGTERM: stopping the sweep"
GRACE_S = 30  # RAY_JOB_STOP_WAIT_TIME_S on the head, and a Kubernetes pod's default grace period

SPACE = {
    "name": "jobstop",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
    "epochs": [1, 2],  # 70 and 140 steps: a trial just started is still running when the signal lands
    "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
    "data": {"dataset": "mnist5k"},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
    "search": {"searcher": "monotone"},
    "tracking": {"experiment": "jobstop"},
}


def api(head: RayHead, path: str) -> object:
    """The job API, asked with the token as any client does."""
    assert head.dashboard_url is not None
    request = urllib.request.Request(f"{head.dashboard_url}{path}",
                                     headers={"Authorization": f"Bearer {head.env['RAY_AUTH_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_ray_job_stop_closes_the_sweep_within_the_grace_period(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    venv_bin = str(Path(sys.executable).parent)
    began = time.monotonic()
    head = start_head(dashboard=True, head_env={
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MLFLOW_TRACKING_URI": tracking,
        "RAYSWEEP_RESULTS": str(tmp_path / "results"),
        "RAY_JOB_STOP_WAIT_TIME_S": str(GRACE_S),
    }, drop_env=("PYTHONPATH", "MLFLOW_TRACKING_URI", "RAYSWEEP_OPTUNA_STORAGE"))
    try:
        assert head.dashboard_url is not None
        head_up = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_TMPDIR")}
        env.update(RAY_ADDRESS=head.dashboard_url, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.env["RAY_AUTH_TOKEN"],
                   PATH=f"{venv_bin}:{env.get('PATH', '')}")
        job = "raysweep_jobstop"
        script = (f"trap : TERM; python -m raysweep run {tmp_path / 'space.yaml'}; "
                  "echo raysweep exit code $? at $(date +%s.%N)")
        submit = subprocess.run([str(RAY), "job", "submit", "--no-wait", "--submission-id", job, "--working-dir", ".",
                                 "--", "sh", "-c", script],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert submit.returncode == 0, (submit.stdout + submit.stderr)[-3000:]
        marks = {"head up": head_up - began, "submitted": time.monotonic() - began}

        deadline = time.monotonic() + 300
        logs = ""
        while "] start " not in logs:  # a trial is running
            assert time.monotonic() < deadline, logs[-3000:]
            status = api(head, f"/api/jobs/{job}")
            assert isinstance(status, dict) and status["status"] in ("PENDING", "RUNNING"), (status, logs[-3000:])
            time.sleep(1)
            got = api(head, f"/api/jobs/{job}/logs")
            logs = got["logs"] if isinstance(got, dict) else ""

        marks["a trial running"] = time.monotonic() - began
        # The driver's own log file, read as it is written: the moment its SIGTERM line appears is
        # when the signal reached it (`ray job stop` itself takes seconds to start and to poll)
        driver_log = head.session_logs / f"job-driver-{job}.log"
        stop = subprocess.Popen([str(RAY), "job", "stop", job], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        sent_at, signalled_at = time.time(), None
        try:
            while stop.poll() is None:
                if signalled_at is None and NOTICE in driver_log.read_text():
                    signalled_at = time.time()
                time.sleep(0.1)
            stop_out = stop.communicate(timeout=GRACE_S + 60)[0]
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait()
        assert stop.returncode == 0, stop_out[-3000:]
        status = api(head, f"/api/jobs/{job}")
        assert isinstance(status, dict) and status["status"] == "STOPPED", status
        logs = driver_log.read_text()
        marks["stopped"] = time.monotonic() - began
        print(f"{marks}\n{logs}")  # pytest -s: what the user sees
        assert signalled_at is not None, logs[-3000:]
        assert "continue it with the same command plus --resume" in logs, logs[-3000:]
        assert "raysweep: interrupted by SIGTERM" in logs, logs[-3000:]
        # the driver exited by itself with SIGTERM's code: SIGKILL at the end of the grace would have
        # ended the shell before it printed this line
        exited = re.search(r"raysweep exit code 143 at ([0-9.]+)", logs)
        assert exited, logs[-3000:]
        took = float(exited.group(1)) - signalled_at
        print(f"`ray job stop` run to SIGTERM in the driver: {signalled_at - sent_at:.1f} s; "
              f"SIGTERM to the driver's exit: {took:.1f} s")
        assert took < GRACE_S, f"{took:.1f} s"

        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("jobstop")
        assert exp is not None
        (parent,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'")
        assert parent.info.status == "FINISHED"  # closed, not FAILED or left RUNNING
        assert {"summary.txt", "summary.json", "trials.csv"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
        children = client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'")
        statuses = [(r.data.tags[Tag.STATUS], r.info.status) for r in children]
        assert (TrialStatus.STOPPED.value, "KILLED") in statuses, statuses
        assert all(mlflow_status != "RUNNING" for _, mlflow_status in statuses), statuses
    finally:
        stop_head(head)
