"""MLflow records of a sweep: one parent run per sweep, one nested child run per trial.

Pure MLflow (no Ray): the Ray Tune callback in `raysweep.sweep.callbacks` calls this from the
driver, so one process writes the store (safe for SQLite) and a crashed trial is still recorded.
Analysis reads these records back; there is no second hidden state.

Writes never wait on the store: each is appended to the sweep's durable journal
(`raysweep.tracking.journal`) and sent by one background thread (`raysweep.tracking.writer`),
which retries while the store is down. Run ids handed out are local ids until the run exists in
MLflow; `resolve()` gives the MLflow id once it does.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from raysweep.config import SweepSpec
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M, Tag, TrialStatus
from raysweep.core.redact import redact
from raysweep.tracking.journal import Journal, new_local_id
from raysweep.tracking.writer import Backlog, JournalWriter, is_transient, mlflow_http_defaults

PARENT_TAG = Tag.PARENT


@dataclass(frozen=True)
class TrialRun:
    """A trial's child run as found in MLflow when a sweep resumes."""

    run_id: str
    mlflow_status: str  # RUNNING (its driver died), FINISHED, FAILED, KILLED
    status: TrialStatus | None  # raysweep.status


CWD_STORE = "the current folder (for ./mlflow.db)"  # where the URI comes from when nothing names one


def tracking_uri_source(cli_uri: str | None, spec_uri: str | None) -> str:
    """Which setting names the tracking URI, in the one order raysweep reads them: `--tracking-uri`,
    `$MLFLOW_TRACKING_URI`, the YAML's `tracking.uri`, else `CWD_STORE` (./mlflow.db)."""
    if cli_uri:
        return "--tracking-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "$MLFLOW_TRACKING_URI"
    return "tracking.uri" if spec_uri else CWD_STORE


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None, *, cwd: Path | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the YAML's tracking.uri, else ./mlflow.db.

    Always absolute: Ray workers and Train runs execute in scratch directories, where a relative
    SQLite path would silently open a second, empty store.
    """
    uri = {"--tracking-uri": cli_uri, "$MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
           "tracking.uri": spec_uri}.get(tracking_uri_source(cli_uri, spec_uri))
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
    """Creates and fills the MLflow runs of one sweep, through its journal (see the module docstring).

    `journal_dir`: the sweep's results folder, where the journal survives the process; None: a
    temporary folder (what is unsent at `close` is then lost with it).
    """

    def __init__(self, uri: str, experiment: str, *, journal_dir: Path | None = None,
                 warn: Any = None) -> None:
        self.uri = uri
        self.experiment = experiment
        mlflow_http_defaults()
        self.client = MlflowClient(tracking_uri=uri)  # reads; every write goes through the journal
        # Found or made now, in the foreground: an unreachable store is an error before anything starts
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
            experiment, tags={Tag.EXPERIMENT_KIND: Tag.EXPERIMENT_KIND_TRAINING})
        if exp is not None and Tag.EXPERIMENT_KIND not in exp.tags:  # made before raysweep tagged its experiments
            self.client.set_experiment_tag(self.experiment_id, Tag.EXPERIMENT_KIND, Tag.EXPERIMENT_KIND_TRAINING)
        folder = journal_dir if journal_dir is not None else Path(tempfile.mkdtemp(prefix="raysweep-"))
        self.journal = Journal(folder, uri, catch_up=False)
        self.writer = JournalWriter(self.journal, uri, warn=warn or _stderr)

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks (tuner.pkl) when a sweep starts. The journal's file and its
        # writer thread belong to this process: a copy keeps the names only and cannot write.
        return {"uri": self.uri, "experiment": self.experiment, "experiment_id": self.experiment_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.journal = self.writer = None  # type: ignore[assignment]

    def resolve(self, run_id: str) -> str:
        """The MLflow id of a run id this tracker handed out, or the local id while it is not created."""
        return self.journal.resolve(run_id) or run_id

    def close(self, timeout_s: float) -> Backlog | None:
        """Wait up to `timeout_s` for the journal to reach MLflow; what is left stays in the journal."""
        backlog = self.writer.close(timeout_s)
        self.journal.close()
        return backlog

    # Journaled writes: the calls of MlflowClient they stand for, with every time stamp fixed now
    def _create_run(self, run_name: str, tags: Mapping[str, str], parent: str | None = None) -> str:
        local = new_local_id()
        self._append("create_run", local=local, experiment=self.experiment, run_name=run_name, tags=dict(tags),
                     parent=parent, start_time=_now())
        return local

    def _log_batch(self, run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Param] = (),
                   tags: Iterable[RunTag] = ()) -> None:
        self._append("log_batch", run=run_id, metrics=[[m.key, m.value, m.timestamp, m.step] for m in metrics],
                     params=[[p.key, p.value] for p in params], tags=[[t.key, t.value] for t in tags])

    def _append(self, op: str, **fields: Any) -> None:
        assert self.journal is not None, "an unpickled SweepTracker is a copy that cannot write"
        # The one redaction point of every write: no password or token reaches the journal on disk, nor
        # a param, tag or artifact in MLflow (spec params carry search.storage and tracking.uri).
        metrics = fields.pop("metrics", None)
        fields = redact(fields)
        if metrics is not None:
            fields["metrics"] = metrics
        self.journal.append(op, **fields)
        self.writer.notify()

    # The sweep ---------------------------------------------------------------------------------
    def start_sweep(self, spec: SweepSpec, *, source: str, n_cells: int, study: str,
                    tags: Mapping[str, str] | None = None) -> str:
        """The sweep's parent run; `tags` adds to (or overrides) the sweep's own, e.g. a fine-tuning
        sweep's kind and the pre-training parents it read."""
        run_id = self._create_run(
            spec.name,
            tags={Tag.KIND: Tag.KIND_SWEEP, Tag.SPACE: source, Tag.STUDY: study,
                  Tag.SEARCHER: spec.search.searcher,
                  **({Tag.WARM_START: spec.search.warm_start} if spec.search.warm_start else {}),
                  Tag.NOTE: spec.description or f"raysweep sweep {spec.name}", **(tags or {})},
        )
        params = flatten(spec.to_dict())
        params["cells"] = n_cells
        self._log_params(run_id, params)
        return run_id

    def end_sweep(self, run_id: str, *, summary_rows: list[dict[str, Any]], metrics: Mapping[str, float],
                  tags: Mapping[str, str], artifacts: Iterable[Path] = (), failed: bool = False) -> None:
        self._log_batch(run_id, metrics=[Metric(k, float(v), _now(), 0) for k, v in metrics.items()],
                        tags=[RunTag(k, v) for k, v in tags.items()])
        self._append("log_dict", run=run_id, data={"cells": summary_rows}, path="summary.json")
        for path in artifacts:  # copied: the caller's files may be temporary
            self._append("log_artifact", run=run_id, file=self.journal.keep_file(Path(path)))
        self._append("set_terminated", run=run_id, status="FAILED" if failed else "FINISHED", end_time=_now())

    # Trials -------------------------------------------------------------------------------------
    def start_trial(self, parent_id: str, cfg: TrialConfig, *, trial_id: str) -> str:
        run_id = self._create_run(
            cfg.run_name(),
            tags={Tag.CELL: cfg.cell, Tag.STATUS: TrialStatus.RUNNING.value, Tag.REASON: cfg.reason,
                  Tag.TRIAL_ID: trial_id, Tag.KIND: Tag.KIND_TRIAL, Tag.TRIAL_KEY: cfg.key.token(),
                  **_finetune_tags(cfg)},
            parent=parent_id,  # the writer sets mlflow.parentRunId to the parent's MLflow id
        )
        spec = cfg.spec
        params = {"model": cfg.rung, "family": spec.ladder.family, "epochs": cfg.epochs, "lr": cfg.lr,
                  "batch_size": spec.batch_size, "dataset": spec.data.dataset, "seed": cfg.seed}
        if cfg.finetune:  # what the unit is: its source's cell and LR, k, the head and augmentation
            u = cfg.finetune
            params.update({"unit": cfg.model, "repeats": u["repeats"], "head_init": u["head_init"],
                           "augment": "/".join(str(v) for v in u["augment"]),
                           "source_cell": u["source_cell"] or "scratch",
                           "source_lr": u["source_lr"], "pretrain_loss": u["pretrain_loss"]})
        rest = flatten(spec.to_dict())
        for k in ("ladder.rungs", "epochs", "name", "description", "batch_size", "seed"):
            rest.pop(k, None)
        params.update(rest)
        self._log_params(run_id, params)
        return run_id

    def log_result(self, run_id: str, result: Mapping[str, Any], logged: dict[str, int] | None = None) -> None:
        """Log one report of a trial: the train-loss curve points since the last, then eval metrics.

        `logged` holds the last step written per metric key of this run (kept up to date here): a
        trial that resumes from a checkpoint reports again the steps between that checkpoint and the
        moment it stopped, and those are not written twice.
        """
        ts = _now()
        floor = logged if logged is not None else {}
        metrics: list[Metric] = []

        def add(key: str, value: float, step: int) -> None:
            if step > floor.get(key, -1):
                metrics.append(Metric(key, value, ts, step))
                floor[key] = step

        for step, loss, lr in result.get(M.CURVE, ()):
            add(M.TRAIN_LOSS, float(loss), int(step))
            add(M.LR, float(lr), int(step))
        step = int(result.get(M.STEP, 0))
        for key in M.PER_REPORT:
            if key in result and result[key] is not None:
                add(key, float(result[key]), step)
        params = []
        if "model_params" in result:
            params.append(Param("model_params", str(int(result["model_params"]))))
            params.append(Param("flops_per_example", f"{float(result['flops_per_example']):.6g}"))
        params += [Param(k, str(int(result[k]))) for k in M.MODEL_SHAPE if k in result]
        if M.TOTAL_STEPS in result:  # the curve's denominator (`raysweep table`: frac = step / total)
            params.append(Param(M.TOTAL_STEPS, str(int(result[M.TOTAL_STEPS]))))
        if metrics or params:  # one entry; MLflow's log_batch splits it to its own limits on replay
            self._log_batch(run_id, metrics=metrics, params=params)

    def end_trial(self, run_id: str, *, status: str, metrics: Mapping[str, float] | None = None,
                  tags: Mapping[str, str] | None = None) -> None:
        """Close a child run: its last metrics, its tags and its status in one batch, then its end time."""
        ts = _now()
        self._log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()],
                        tags=[*(RunTag(k, str(v)) for k, v in (tags or {}).items()), RunTag(Tag.STATUS, str(status))])
        self._append("set_terminated", run=run_id, status=TrialStatus(status).mlflow_status, end_time=ts)

    # Resuming a sweep whose driver died -----------------------------------------------------------
    # Read in the foreground when a sweep resumes: the store must answer then, as when a sweep starts.
    def sweep_runs(self, study: str) -> list[str]:
        """The sweep (parent) runs of a study in MLflow, oldest first (pre-training or fine-tuning)."""
        runs = [r for kind in SWEEP_KINDS for r in self.client.search_runs(
            [self.experiment_id], max_results=1000, order_by=["attributes.start_time ASC"],
            filter_string=f"tags.`{Tag.STUDY}` = '{study}' and tags.`{Tag.KIND}` = '{kind}'")]
        return [r.info.run_id for r in sorted(runs, key=lambda r: r.info.start_time or 0)]

    def reopen_sweep(self, run_id: str) -> None:
        """Continue a sweep under its original parent run (left RUNNING by a killed driver, or ended)."""
        resumed = int(self.client.get_run(run_id).data.tags.get(Tag.RESUMED, "0") or 0)
        self._append("set_terminated", run=run_id, status="RUNNING", end_time=None)
        self.set_tags(run_id, {Tag.RESUMED: str(resumed + 1)})

    def trial_runs(self, study: str) -> dict[str, TrialRun]:
        """Every child run of a study by its trial key token (the oldest, where a key has several)."""
        out: dict[str, TrialRun] = {}
        like = study.replace("%", "_").replace("'", "_")
        for kind in TRIAL_KINDS:
            token = None
            while True:
                page = self.client.search_runs(
                    [self.experiment_id], max_results=1000, page_token=token, order_by=["attributes.start_time ASC"],
                    filter_string=f"tags.`{Tag.KIND}` = '{kind}' and tags.`{Tag.TRIAL_KEY}` LIKE '{like}|%'")
                for run in page:
                    key = run.data.tags.get(Tag.TRIAL_KEY, "")
                    if key.startswith(study + "|") and key not in out:
                        out[key] = TrialRun(run.info.run_id, run.info.status,
                                            TrialStatus.parse(run.data.tags.get(Tag.STATUS)))
                token = page.token
                if not token:
                    break
        return out

    def last_steps(self, run_id: str) -> dict[str, int]:
        """The last step written per metric key of a run (what a resumed trial must not write again)."""
        try:
            run = self.client.get_run(run_id)
            out: dict[str, int] = {}
            for key in run.data.metrics:
                history = self.client.get_metric_history(run_id, key)
                if history:
                    out[key] = max(m.step for m in history)
            return out
        except MlflowException as err:  # the store is down: the journal's order still holds
            if not is_transient(err):
                raise
            return {}

    def reopen_trial(self, run_id: str, cfg: TrialConfig) -> None:
        self._append("set_terminated", run=run_id, status="RUNNING", end_time=None)
        self.set_tags(run_id, {Tag.STATUS: TrialStatus.RUNNING.value, Tag.REASON: cfg.reason})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


# The kinds of parent and child runs a sweep makes: a resumed sweep of either stage finds its own
SWEEP_KINDS: Final = (Tag.KIND_SWEEP, Tag.KIND_FINETUNE_SWEEP)
TRIAL_KINDS: Final = (Tag.KIND_TRIAL, Tag.KIND_FINETUNE_TRIAL)


def _finetune_tags(cfg: TrialConfig) -> dict[str, str]:
    """A fine-tuning trial's tags: its kind, durable key, source run and trial, why it was chosen."""
    key = cfg.finetune_key
    if key is None or cfg.finetune is None:
        return {}
    u = cfg.finetune
    tags = {Tag.KIND: Tag.KIND_FINETUNE_TRIAL, Tag.FINETUNE_KEY: key.token(),
            Tag.FINETUNE_REASONS: ";".join(f"{why}@{point}" for why, point in u["reasons"])}
    if u["source_trial_key"]:
        tags.update({Tag.SOURCE_RUN: str(u["source_run"]), Tag.SOURCE_TRIAL_KEY: str(u["source_trial_key"]),
                     Tag.SOURCE_CELL: str(u["source_cell"])})
    return tags


def _now() -> int:
    return int(time.time() * 1000)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_metric(v: float) -> float:
    """MLflow's SQL store keeps +inf as the largest double: map it back to inf when reading."""
    return math.inf if v >= 1e308 else v


def log_artifacts(uri: str, run_ids: Iterable[str], paths: Iterable[Path], artifact_path: str | None = None) -> None:
    """Attach files (an analysis's figures and report) to runs, e.g. every parent run of a sweep."""
    client = MlflowClient(tracking_uri=uri)
    files = list(paths)
    for run_id in run_ids:
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path)
