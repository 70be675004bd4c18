"""Ctrl-C on `raysweep run`: the sweep stops gracefully, says how to continue, and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from raysweep.sweep.runner import latest_study

pytestmark = pytest.mark.slow

SPACE = {
    "name": "ctrlc",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
    "epochs": [0.25, 0.5, 1],
    "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
    "data": {"dataset": "mnist5k"},
    "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
    "search": {"searcher": "monotone"},
    "tracking": {"experiment": "ctrlc"},
}


def test_ctrl_c_stops_the_sweep_with_a_resume_hint_and_exit_130(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster of its own
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysweep", "run", str(space), "--results", str(tmp_path / "res"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
    )
    lines = []
    watchdog = threading.Timer(300, proc.kill)  # a silent hang must not block the read below
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait for the first finished trial, then press Ctrl-C
            lines.append(line)
            if "] done " in line:
                proc.send_signal(signal.SIGINT)
                break
        out, _ = proc.communicate(timeout=180)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 130, text[-3000:]
    assert "cells settled: continue it with the same command plus --resume" in text
    assert "raysweep: interrupted" in text
    # the study the hint points at is in Optuna storage, ready to resume
    assert latest_study(f"sqlite:///{tmp_path / 'res' / 'ctrlc' / 'optuna.db'}", "ctrlc") is not None
