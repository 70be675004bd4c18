"""MLflow records of a sweep: one parent run per sweep, one nested child run per trial.

Pure MLflow (no Ray): the Ray Tune callback in `raysweep.sweep.callbacks` calls this from the
driver, so one process writes the store (safe for SQLite) and a crashed trial is still recorded.
Analysis reads these records back; there is no second hidden state.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from raysweep.analysis.summary import TrialRow
from raysweep.config import SweepSpec
from raysweep.trial import TrialConfig

PARENT_TAG = "mlflow.parentRunId"
_BATCH = 100  # MLflow's log_batch accepts at most 100 params / 1000 metrics per call


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None, *, cwd: Path | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the YAML's tracking.uri, else ./mlflow.db.

    Always absolute: Ray workers and Train runs execute in scratch directories, where a relative
    SQLite path would silently open a second, empty store.
    """
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri
    base = cwd or Path.cwd()
    if not uri:
        return f"sqlite:///{(base / 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base / uri[len('sqlite:///'):]).resolve()}"
    if "://" not in uri:  # a bare folder: MLflow's file store
        return (base / uri).resolve().as_uri()
    return uri


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


class SweepTracker:
    """Creates and fills the MLflow runs of one sweep."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment)

    # The sweep ---------------------------------------------------------------------------------
    def start_sweep(self, spec: SweepSpec, *, source: str, n_cells: int, study: str) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=spec.name,
            tags={"raysweep.kind": "sweep", "raysweep.space": source, "raysweep.study": study,
                  "raysweep.searcher": spec.search.searcher,
                  "mlflow.note.content": spec.description or f"raysweep sweep {spec.name}"},
        )
        params = flatten(spec.to_dict())
        params["cells"] = n_cells
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def end_sweep(self, run_id: str, *, summary_rows: list[dict[str, Any]], metrics: Mapping[str, float],
                  tags: Mapping[str, str], artifacts: Iterable[Path] = (), failed: bool = False) -> None:
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), _now(), 0) for k, v in metrics.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.log_dict(run_id, {"cells": summary_rows}, "summary.json")
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    # Trials -------------------------------------------------------------------------------------
    def start_trial(self, parent_id: str, cfg: TrialConfig, *, trial_id: str) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{cfg.cell} lr={cfg.lr:g}",
            tags={PARENT_TAG: parent_id, "raysweep.cell": cfg.cell, "raysweep.status": "running",
                  "raysweep.reason": cfg.reason, "raysweep.trial_id": trial_id, "raysweep.kind": "trial"},
        )
        spec = cfg.spec
        params = {"model": cfg.model, "family": spec.ladder.family, "epochs": cfg.epochs, "lr": cfg.lr,
                  "batch_size": spec.batch_size, "dataset": spec.data.dataset, "seed": spec.seed}
        rest = flatten(spec.to_dict())
        for k in ("ladder.rungs", "epochs", "name", "description", "batch_size", "seed"):
            rest.pop(k, None)
        params.update(rest)
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def log_result(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Log one report of a trial: the train-loss curve points since the last, then eval metrics."""
        ts = _now()
        metrics: list[Metric] = []
        for step, loss, lr in result.get("curve", ()):
            metrics.append(Metric("train/loss", float(loss), ts, int(step)))
            metrics.append(Metric("lr", float(lr), ts, int(step)))
        step = int(result.get("step", 0))
        for key in ("val/loss", "val/acc", "epoch", "compute/examples", "compute/flops", "compute/core_hours",
                    "time/train_s", "time/loop_s"):
            if key in result and result[key] is not None:
                metrics.append(Metric(key, float(result[key]), ts, step))
        params = []
        if "model_params" in result:
            params.append(Param("model_params", str(int(result["model_params"]))))
            params.append(Param("flops_per_example", f"{float(result['flops_per_example']):.6g}"))
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000], params=params if i == 0 else [])
        if not metrics and params:
            self.client.log_batch(run_id, params=params)

    def end_trial(self, run_id: str, *, status: str, metrics: Mapping[str, float] | None = None) -> None:
        ts = _now()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()],
                              tags=[RunTag("raysweep.status", status)])
        self.client.set_terminated(run_id, {"failed": "FAILED", "stopped": "KILLED"}.get(status, "FINISHED"))

    def earlier_trials(self, study: str, *, exclude_parent: str) -> list[TrialRow]:
        """Finished trials of earlier sessions of the same sweep (a resumed study)."""
        sweeps = self.client.search_runs([self.experiment_id], max_results=1000,
                                         filter_string=f"tags.`raysweep.study` = '{study}'")
        parents = [s.info.run_id for s in sweeps if s.info.run_id != exclude_parent]
        if not parents:
            return []
        rows = read_trials(self.uri, self.client.get_experiment(self.experiment_id).name, parents)
        return [TrialRow(model=r["model"], epochs=r["epochs"], lr=r["lr"], status=r["status"], val_loss=r["val_loss"],
                         val_acc=r["val_acc"], flops=r["flops"], run_id=r["run_id"]) for r in rows]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[i:i + _BATCH])


def _now() -> int:
    return int(time.time() * 1000)


def read_metric(v: float) -> float:
    """MLflow's SQL store keeps +inf as the largest double: map it back to inf when reading."""
    return math.inf if v >= 1e308 else v


# Reading the record back -------------------------------------------------------------------------

TABLE_COLUMNS = ("model", "model_params", "epochs", "lr", "seed", "val_loss", "flops", "core_hours")


def read_trials(uri: str, experiment: str, parent_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every finished trial (ok or diverged) of the sweeps in `experiment` (or only `parent_ids`),
    as rows with TABLE_COLUMNS plus `status` and `parent`. Failed trials are left out: they say
    nothing about the learning rate."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise FileNotFoundError(f"no MLflow experiment named {experiment!r} at {uri}")
    parents = set(parent_ids)
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'trial'",
                                  max_results=1000, page_token=token)
        for run in page:
            tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
            status = tags.get("raysweep.status")
            if status not in ("ok", "diverged") or (parents and tags.get(PARENT_TAG) not in parents):
                continue
            rows.append({
                "model": params["model"],
                "model_params": int(params.get("model_params", 0) or 0),
                "epochs": float(params["epochs"]),
                "lr": float(params["lr"]),
                "seed": int(params.get("seed", 0)),
                "val_loss": math.inf if status == "diverged" else read_metric(metrics.get("val/loss", math.inf)),
                "flops": metrics.get("compute/flops", 0.0),
                "core_hours": metrics.get("compute/core_hours", 0.0),
                "status": status,
                "parent": tags.get(PARENT_TAG, ""),
                "val_acc": metrics.get("val/acc", math.nan),
                "run_id": run.info.run_id,
            })
        token = page.token
        if not token:
            break
    rows.sort(key=lambda r: (r["model_params"], r["model"], r["epochs"], r["lr"], r["seed"]))
    return rows


def log_artifacts(uri: str, run_ids: Iterable[str], paths: Iterable[Path], artifact_path: str | None = None) -> None:
    """Attach files (an analysis's figures and report) to runs, e.g. every parent run of a sweep."""
    client = MlflowClient(tracking_uri=uri)
    files = list(paths)
    for run_id in run_ids:
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path)
