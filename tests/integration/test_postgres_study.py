"""The Optuna study in a real PostgreSQL, driven by real `raysweep run` processes.

- A sweep stopped by `--max-trials` in one driver process is resumed by a second process: the
  same study goes on to the end and no finished (cell, lr) is run again.
- While that second driver runs, a third `--resume` of the same sweep is refused with one line
  naming the driver that holds it (exit 2), and the second driver is not disturbed.
- The PostgreSQL server stopped and started again in the middle of a sweep: the sweep finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag, TrialStatus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EPOCHS = (0.25, 0.5)
CELLS = {f"{rung}@{e:g}" for rung in ("nfnet_t0", "nfnet_t1") for e in EPOCHS}


def space(tmp_path: Path, name: str, storage: str, epochs: tuple[float, ...] = EPOCHS) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name,
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
        "epochs": list(epochs),
        "lr": {"base": 0.4, "factor": 2, "low": 0.05, "high": 1.6},
        "data": {"dataset": "mnist5k"},
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
        "search": {"searcher": "monotone", "storage": storage},
        "tracking": {"experiment": name},
    }))
    return path


class Driver:
    """One `raysweep run` process; its output is read on a thread so that it never blocks."""

    def __init__(self, tmp_path: Path, spec: Path, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray cluster of its own
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "raysweep", "run", str(spec), "--results", str(tmp_path / "res"),
             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
        self.out: list[str] = []
        self._err: list[str] = []
        # both pipes drained on threads of their own: Ray writes a lot to stderr, and a full pipe blocks
        self._readers = [threading.Thread(target=self._read, args=(pipe, into), daemon=True)
                         for pipe, into in ((self.proc.stdout, self.out), (self.proc.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: Any, into: list[str]) -> None:
        for line in pipe:
            into.append(line)  # noqa: PERF402 - read while the process runs, line by line

    @property
    def err(self) -> str:
        return "".join(self._err)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            if self.proc.poll() is not None:
                self.finish()  # reads what is left of its output
                if any(text in line for line in self.out):
                    return
                raise AssertionError(f"the driver ended before {text!r}: {self.text()}")
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s: {self.text()}"
            time.sleep(0.2)

    def finish(self, timeout: float = 600) -> int:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        for reader in self._readers:
            reader.join(timeout=10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def text(self) -> str:
        return ("".join(self.out) + self.err)[-12000:]


def wait_for_lease_holder(url: str, pid: int, timeout: float = 120) -> None:
    """Until the driver `pid` holds an advisory lock in the database (its sweep lease)."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                names = conn.execute(sqlalchemy.text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted")).scalars().all()
            if any(n.startswith(f"raysweep {pid}@") for n in names):
                return
            assert time.monotonic() < deadline, f"driver {pid} took no lease in {timeout} s"
            time.sleep(0.2)
    finally:
        engine.dispose()


def completed_pairs(url: str) -> tuple[str, Counter]:
    """The one study in the database, and how often each (cell, lr) completed in it."""
    (study_name,) = optuna.get_all_study_names(url)
    study = optuna.load_study(study_name=study_name, storage=url)
    done = Counter((t.params["cell"], round(t.params["lr"], 9)) for t in study.trials
                   if t.state == optuna.trial.TrialState.COMPLETE)
    return study_name, done


def ok_runs(tmp_path: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([exp], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'", max_results=1000)
    return [r for r in runs if r.data.tags.get(Tag.STATUS) == TrialStatus.OK.value]


def test_a_second_driver_resumes_the_study_and_a_third_is_refused_while_it_runs(postgres, tmp_path: Path) -> None:
    url = postgres.create_db("resume")
    # budgets 4x the other test's: the second driver's remaining trials must outlast the third
    # driver's start and refusal on a loaded machine (with 0.25/0.5 the second could finish first)
    spec = space(tmp_path, "pgresume", url, epochs=(1, 2))

    first = Driver(tmp_path, spec, "--max-trials", "2")
    assert first.finish() == 0, first.text()
    assert "continue it with the same command plus --resume" in "".join(first.out), first.text()
    study_name, done_first = completed_pairs(url)
    assert 2 <= sum(done_first.values()) < 9

    second = Driver(tmp_path, spec, "--resume")
    try:
        wait_for_lease_holder(url, second.proc.pid)
        third = Driver(tmp_path, spec, "--resume")
        assert third.finish(timeout=300) == 2, third.text()
        assert second.proc.poll() is None, "the second driver ended before the third was refused: inconclusive"
        (line,) = [ln for ln in third.err.splitlines() if ln.startswith("raysweep")]  # MLflow may log INFO lines
        assert line.startswith("raysweep: error: --resume: expected no other driver of study "), line
        assert f"{study_name!r}" in line and f"raysweep {second.proc.pid}@" in line
        assert "raysweep-test-pw" not in line
        assert second.finish() == 0, second.text()
    finally:
        second.kill()

    study_again, done = completed_pairs(url)
    assert study_again == study_name  # one study, continued
    assert max(done.values()) == 1, f"a finished (cell, lr) ran again: {done}"
    assert set(done_first) <= set(done)
    assert {cell for cell, _ in done} == {f"{rung}@{e}" for rung in ("nfnet_t0", "nfnet_t1") for e in (1, 2)}
    out = "".join(second.out)
    assert "cells settled" not in out  # every cell settled
    # MLflow agrees: one ok child run per (cell, lr) over both drivers, one per completed trial
    runs = ok_runs(tmp_path, "pgresume")
    pairs = Counter((r.data.tags[Tag.CELL], round(float(r.data.params["lr"]), 9)) for r in runs)
    assert pairs == done
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = {r.data.tags[Tag.PARENT] for r in runs}
    # both drivers' trials hang under the sweep's one parent run
    assert len(parents) == 1 and {client.get_run(p).data.tags[Tag.STUDY] for p in parents} == {study_name}


def test_a_postgresql_restart_mid_sweep_does_not_lose_the_sweep(postgres, tmp_path: Path) -> None:
    url = postgres.create_db("restart")
    driver = Driver(tmp_path, space(tmp_path, "pgrestart", url))
    done = lambda: sum("] done " in line for line in driver.out)
    try:
        driver.wait_for("] done ")
        t0 = time.monotonic()
        before = done()
        postgres.stop()
        time.sleep(15)  # the sweep goes on without its database: trials finish, the searcher waits
        postgres.start()
        outage, during = time.monotonic() - t0, done() - before
        assert driver.finish() == 0, driver.text()
    finally:
        driver.kill()
    _, completed = completed_pairs(url)
    assert max(completed.values()) == 1 and {cell for cell, _ in completed} == CELLS, completed
    runs = ok_runs(tmp_path, "pgrestart")
    assert Counter((r.data.tags[Tag.CELL], round(float(r.data.params["lr"]), 9)) for r in runs) == completed
    assert all(r.data.metrics[M.VAL_LOSS] < 3 for r in runs)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pgrestart").experiment_id
    assert not client.search_runs([exp], filter_string="attributes.status = 'RUNNING'")
    print(f"PostgreSQL down {outage:.1f} s mid-sweep, {during} trial(s) finished meanwhile; "
          f"{sum(completed.values())} trials completed, 0 run twice; driver stderr: {driver.err.strip()[-300:]!r}")
