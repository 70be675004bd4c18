"""Shared by the fault-injection tests: run the real CLI in its own process group, read MLflow back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag

RAYSWEEP = str(Path(sys.executable).with_name("raysweep"))


def write_space(folder: Path, name: str, **over: Any) -> Path:
    space = {
        "name": name,
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
        "epochs": [2, 4],
        "lr": {"base": 0.4, "factor": 2, "low": 0.2, "high": 0.4},
        "data": {"dataset": "mnist5k"},
        "batch_size": 64,
        "optim": {"agc_clip": 0.16},
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
        "search": {"searcher": "monotone"},
        "checkpoint": {"every_steps": 20},
        "tracking": {"experiment": name},
    }
    for k, v in over.items():
        space[k] = v
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """The CLI in a new process group (session): killing the group kills the driver and the Ray
    processes it started, as when an SSH session drops."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([RAYSWEEP, *args], cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(2)  # let the Ray processes of the group go


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def child_runs(uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'",
                              max_results=1000)


def sweep_runs(uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'")


def duplicated_steps(uri: str, run_id: str) -> dict[str, list[int]]:
    """Metric keys of a run with a step written more than once, and those steps."""
    client = MlflowClient(uri)
    out = {}
    for key in client.get_run(run_id).data.metrics:
        counts = Counter(m.step for m in client.get_metric_history(run_id, key))
        dup = sorted(s for s, n in counts.items() if n > 1)
        if dup and key not in (M.TRIAL_WALL_S, M.OVERHEAD_S):
            out[key] = dup
    return out


def results_by_key(uri: str, experiment: str) -> dict[str, tuple[str, float, float]]:
    """(cell, lr) -> (status, val/loss, examples) for every child run."""
    out = {}
    for run in child_runs(uri, experiment):
        key = (run.data.tags[Tag.CELL], float(run.data.params["lr"]))
        out[key] = (run.data.tags[Tag.STATUS], run.data.metrics.get(M.VAL_LOSS), run.data.metrics.get(M.EXAMPLES))
    return out
