"""Ctrl-C on `raysweep run`, against real Tune: a real SIGINT to a real `raysweep run` process.

What the README promises, read back from MLflow: the sweep stops gracefully; the trials it cut off
are closed as `stopped` (MLflow status KILLED); the parent run is closed with its summary and
trials table; the command says how to continue and exits 130. The same sweep, resumed and left to
finish, is not `interrupted` and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from raysweep.core.records import Tag, TrialStatus
from raysweep.sweep.runner import latest_study

pytestmark = pytest.mark.slow

SPACE = {
    "name": "ctrlc",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
    "epochs": [0.5, 1],  # 35 and 70 steps: a trial just started is still running a moment later
    "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
    "data": {"dataset": "mnist5k"},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
    "search": {"searcher": "monotone"},
    "tracking": {"experiment": "ctrlc"},
}


def run(tmp_path: Path, *extra: str, interrupt_after: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """`raysweep run` in a process of its own; with `interrupt_after`, SIGINT once each of those
    output fragments has been seen in turn. Returns the exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster of its own
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysweep", "run", str(tmp_path / "space.yaml"), "--results", str(tmp_path / "res"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )
    lines = []
    watchdog = threading.Timer(400, proc.kill)  # a silent hang must not block the read below
    watchdog.start()
    try:
        assert proc.stdout is not None
        waiting = list(interrupt_after)
        for line in proc.stdout if waiting else ():
            lines.append(line)
            if waiting[0] in line:
                waiting.pop(0)
            if not waiting:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=300)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + out, err


def test_ctrl_c_closes_the_cut_off_trials_and_the_sweep_and_a_resumed_sweep_finishes(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    # Ctrl-C right after a trial has started, once one has finished: at least one is cut off
    code, out, err = run(tmp_path, interrupt_after=("] done ", "] start "))
    text = out + err
    assert code == 130, text[-3000:]
    assert "cells settled: continue it with the same command plus --resume" in out
    assert "raysweep: interrupted" in err
    # the study the hint points at is in Optuna storage, ready to resume
    assert latest_study(f"sqlite:///{tmp_path / 'res' / 'ctrlc' / 'optuna.db'}", "ctrlc") is not None

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ctrlc").experiment_id
    (parent,) = client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'")
    assert parent.info.status == "FINISHED"  # closed, not left RUNNING
    assert {"summary.txt", "summary.json", "trials.csv"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'")
    assert children and all(r.data.tags[Tag.PARENT] == parent.info.run_id for r in children)
    statuses = {r.info.run_id: (r.data.tags[Tag.STATUS], r.info.status) for r in children}
    stopped = [s for s in statuses.values() if s[0] == TrialStatus.STOPPED.value]
    assert stopped, f"no trial was cut off: {statuses}"
    assert all(mlflow_status == "KILLED" for _, mlflow_status in stopped), statuses
    assert all(s in {(TrialStatus.OK.value, "FINISHED"), (TrialStatus.DIVERGED.value, "FINISHED"),
                     (TrialStatus.STOPPED.value, "KILLED")} for s in statuses.values()), statuses
    trials_csv = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    assert Path(trials_csv).read_text().count(",stopped,") == len(stopped)

    # the same command plus --resume, left alone: it finishes, is not interrupted and exits 0
    code, out, err = run(tmp_path, "--resume")
    assert code == 0, (out + err)[-3000:]
    assert "raysweep: interrupted" not in err and "continue it with" not in out
    parents = client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'")
    resumed = max(parents, key=lambda r: r.info.start_time)  # a new parent run, or the original one continued
    assert resumed.info.status == "FINISHED"
    settled = {k: v for k, v in resumed.data.tags.items() if k.startswith(Tag.SETTLED_PREFIX)}
    assert len(settled) == 4 and "none" not in settled.values(), settled
