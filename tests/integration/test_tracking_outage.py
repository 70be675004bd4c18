"""A real `mlflow server` stopped mid-sweep: training goes on, and the record ends up whole.

Everything is real: `raysweep run` as a subprocess on its own local Ray cluster, `mlflow server`
processes on 127.0.0.1 with SQLite backends in tmp_path, killed by their process group id (the
server's workers are its children). The outage length is RAYSWEEP_OUTAGE_S (default 30 s).
Set RAYSWEEP_OUTAGE_REPORT=path to append the measured numbers as a JSON line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag
from raysweep.tracking.journal import ACK, JOURNAL
from tests.integration.mlflow_server import MlflowServer
from tests.integration.ray_head import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "search_spaces" / "demo.yaml"
OUTAGE_S = float(os.environ.get("RAYSWEEP_OUTAGE_S", "30"))
# one rung, two budgets, a grid of two LRs: 4 short trials
SETS = ["ladder.rungs=[nfnet_t0]", "epochs=[0.5,1]", "search.searcher=grid", "lr.base=0.1", "lr.low=0.1",
        "lr.high=0.2", "tracking.experiment=outage", "resources.concurrent_trials=2"]
CHILD_PARAMS = {"model", "model_params", "epochs", "lr", "batch_size", "dataset", "seed", "optim.momentum"}


class Sweep:
    """`raysweep run` as a subprocess; every output line kept with the time it arrived."""

    def __init__(self, tmp_path: Path, uri: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        env["PYTHONPATH"] = str(ROOT)
        args = [sys.executable, "-m", "raysweep", "run", str(DEMO), "--results", str(tmp_path / "results"),
                "--tracking-uri", uri]
        for s in [*SETS, *extra]:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                     env=env, start_new_session=True)
        self.lines: list[tuple[float, str, str]] = []  # (time, stream, line)
        self._threads = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                         for s, n in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self._threads:
            t.start()

    def _read(self, stream, name: str) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append((time.monotonic(), name, line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, _, line in list(self.lines):
                if pattern in line:
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the sweep's output:\n{self.text()[-3000:]}")

    def finish(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        return rc

    def text(self, stream: str | None = None) -> str:
        return "\n".join(line for _, s, line in self.lines if stream in (None, s))


def reports(results: Path) -> dict[tuple[float, float], dict[str, set[int]]]:
    """What each trial reported to Tune (Tune's own result.json): (epochs, lr) -> key -> steps."""
    out: dict[tuple[float, float], dict[str, set[int]]] = {}
    for path in results.glob("tune/*/*/result.json"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            steps = out.setdefault((float(r["config"]["epochs"]), float(r["config"]["lr"])), {})
            for step, _, _ in r.get(M.CURVE, ()):
                steps.setdefault(M.TRAIN_LOSS, set()).add(int(step))
                steps.setdefault(M.LR, set()).add(int(step))
            if r.get(M.VAL_LOSS) is not None:
                steps.setdefault(M.VAL_LOSS, set()).add(int(r[M.STEP]))
    return out


def audit(uri: str, results: Path, expect_trials: int) -> dict[str, int]:
    """The MLflow record against the trials' own reports: one child run each, closed, params there,
    every reported (key, step) present once. Returns counts of what is duplicated or lost."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("outage")
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    parents = [r for r in runs if r.data.tags.get(Tag.KIND) == "sweep"]
    kids = [r for r in runs if r.data.tags.get(Tag.KIND) == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {"summary.json", "trials.csv"} <= {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    reported = reports(results)
    assert len(reported) == expect_trials
    by_trial: dict[tuple[float, float], list] = {}
    for kid in kids:
        by_trial.setdefault((float(kid.data.params["epochs"]), float(kid.data.params["lr"])), []).append(kid)
    assert sorted(by_trial) == sorted(reported) and all(len(v) == 1 for v in by_trial.values()), by_trial
    dup = lost = written = 0
    for trial, [kid] in by_trial.items():
        assert kid.data.tags[Tag.PARENT] == parents[0].info.run_id
        assert kid.info.status == "FINISHED" and kid.data.tags[Tag.STATUS] == "ok", kid.data.tags
        assert CHILD_PARAMS <= set(kid.data.params), CHILD_PARAMS - set(kid.data.params)
        for key, steps in reported[trial].items():
            hist = [h.step for h in client.get_metric_history(kid.info.run_id, key)]
            dup += len(hist) - len(set(hist))
            lost += len(steps - set(hist))
            written += len(hist)
    return {"duplicated": dup, "lost": lost, "metric_points": written}


def journal_unsent(folder: Path) -> list[int]:
    n = len((folder / JOURNAL).read_text().splitlines())
    return [n - 1 - a["done"] for a in json.loads((folder / ACK).read_text()).values()]


def test_a_stopped_mlflow_server_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server", free_port())
    server.start()
    sweep = None
    try:
        sweep = Sweep(tmp_path, server.uri, "epochs=[2,4]")  # long enough to train on past the outage
        sweep.wait_for("] start ", timeout=400)
        down = time.monotonic()
        server.kill(signal.SIGKILL)
        time.sleep(OUTAGE_S)
        server.start()  # same port, same backend
        up = time.monotonic()
        waited = sum(journal_unsent(tmp_path / "results" / "demo"))  # entries that wait for the store
        rc = sweep.finish(timeout=900)
        assert rc == 0, sweep.text()[-4000:]
        during = sum(1 for t, _, line in sweep.lines if "] done " in line and down <= t <= up)
        done = sum(1 for _, _, line in sweep.lines if "] done " in line)
        print("\n".join(f"{t - down:+7.1f} s  {line}" for t, _, line in sweep.lines
                        if line.startswith(("raysweep:", "[")) or "] " in line[:12]))
        counts = audit(server.uri, tmp_path / "results", expect_trials=4)
        told = [int(m.group(1)) for m in re.finditer(r"sending the (\d+) tracking records that waited", sweep.text())]
        measured = {"test": "outage", "outage_s": round(up - down, 1), "asked_s": OUTAGE_S, "trials": done,
                    "trials_done_during_outage": during, "trials_done_after": sum(
                        1 for t, _, line in sweep.lines if "] done " in line and t > up),
                    "records_sent_after_outage": waited,
                    "records_the_writer_said_waited": sum(told), **counts}
        print(json.dumps(measured))
        if os.environ.get("RAYSWEEP_OUTAGE_REPORT"):
            with open(os.environ["RAYSWEEP_OUTAGE_REPORT"], "a") as f:
                f.write(json.dumps(measured) + "\n")
        assert counts["duplicated"] == 0 and counts["lost"] == 0
        assert done == 4 and during >= 1  # training went on while MLflow was away
        assert waited > 0 and sum(told) > 0 and "is not answering" in sweep.text("err")
        assert journal_unsent(tmp_path / "results" / "demo") == [0]
    finally:
        if sweep is not None and sweep.proc.poll() is None:
            os.killpg(sweep.proc.pid, signal.SIGKILL)
        server.kill()


def test_a_server_that_never_returns_ends_in_one_line_and_upload_completes_the_record(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server", free_port())
    server.start()
    sweep = None
    fresh = MlflowServer(tmp_path / "fresh", free_port())
    try:
        sweep = Sweep(tmp_path, server.uri, "tracking.flush_timeout_s=5", "epochs=[0.5]")
        sweep.wait_for("] start ", timeout=400)
        server.kill(signal.SIGKILL)
        rc = sweep.finish(timeout=900)
        err = [line for line in sweep.text("err").splitlines() if line.strip()]
        assert rc == 2, sweep.text()[-4000:]
        print("\n".join(line for line in err if line.startswith("raysweep:")))
        assert err[-1].startswith(f"raysweep: error: MLflow at {server.uri} did not take "), err[-3:]
        assert sum("raysweep: error" in line for line in err) == 1
        folder = tmp_path / "results" / "demo"
        assert f"raysweep upload {folder} --tracking-uri {server.uri}" in err[-1]
        assert sum(journal_unsent(folder)) > 0  # the records wait in the journal

        fresh.start()  # the old store is gone for good: send everything to a new one
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        up = subprocess.run([sys.executable, "-m", "raysweep", "upload", str(folder), "--tracking-uri", fresh.uri],
                            check=False, capture_output=True, text=True, env=env, timeout=300)
        assert up.returncode == 0 and up.stdout.startswith("uploaded "), up.stdout + up.stderr
        counts = audit(fresh.uri, tmp_path / "results", expect_trials=2)
        assert counts["duplicated"] == 0 and counts["lost"] == 0 and counts["metric_points"] > 0
        again = subprocess.run([sys.executable, "-m", "raysweep", "upload", str(folder), "--tracking-uri", fresh.uri],
                               check=False, capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0 and again.stdout.startswith("nothing to upload"), again.stdout + again.stderr
        assert audit(fresh.uri, tmp_path / "results", expect_trials=2) == counts
        print(json.dumps({"test": "never_returns", "unsent_at_exit": err[-1].split(" did not take ")[1].split()[0],
                          "upload": up.stdout.strip(), **counts}))
    finally:
        if sweep is not None and sweep.proc.poll() is None:
            os.killpg(sweep.proc.pid, signal.SIGKILL)
        server.kill()
        fresh.kill()
