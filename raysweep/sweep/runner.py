"""Runs one sweep: MLflow parent run, searcher, Ray Tune experiment, summary.

`run_sweep` is the only function the CLI calls to launch work; everything it needs has been
validated before it is called, so a typo never starts Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep.analysis.plots import plot_lr_curves
from raysweep.analysis.summary import CellRow, TrialRow, format_summary, median, summarize
from raysweep.config import SweepSpec
from raysweep.errors import SpecError
from raysweep.records import Tag, TrialStatus
from raysweep.search import lease as lease_of
from raysweep.search import make_searcher
from raysweep.search.warm import WarmPlan
from raysweep.space import Lattice
from raysweep.sweep.stop_signals import Watch, interrupt_watch, sigterm_as_interrupt
from raysweep.tracking import SweepTracker
from raysweep.tracking_writer import Backlog


@dataclass(frozen=True)
class SweepOutcome:
    parent_run_id: str
    tracking_uri: str
    rows: list[CellRow]
    trials: int
    wall_s: float
    median_trial_wall_s: float
    median_loop_s: float
    median_overhead_s: float
    ideal_s: float  # sum of the trials' wall times / concurrent trials: the makespan with no idle slot
    interrupted: bool = False  # Ctrl-C (SIGINT) or SIGTERM stopped the sweep early
    interrupted_by: int = signal.SIGINT  # which of the two, when interrupted (exit code 128 + it)
    unsent: Backlog | None = None  # tracking records MLflow did not take in time: they wait in the journal


def lattice_of(spec: SweepSpec) -> Lattice:
    return Lattice(models=spec.ladder.rungs, epochs=spec.epochs, lrs=spec.lr_grid())


def run_sweep(spec: SweepSpec, *, source: str, tracking_uri: str, results_dir: Path,
              verbose: int = 1, max_trials: int | None = None, resume: bool = False,
              warm_start: WarmPlan | None = None) -> SweepOutcome:
    """Run the sweep to the end, or stop it once `max_trials` trials have finished in this session.

    verbose: 0 quiet, 1 a line per finished trial, 2 plus Ray Tune's own tables. A searcher that
    keeps its study in Optuna storage (every one but `grid`) resumes where a stopped or killed
    session left off when the same sweep runs again with `resume=True`; otherwise every run starts
    a new study named `<name>-<timestamp>`. `warm_start` (`raysweep.warm_plan`) gives every cell
    its first LR from an earlier study's trend; a resumed study keeps the one it was created with.
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our callback is the record
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # Mid-epoch checkpoints and the report a resumed trial makes at once carry no val/loss; the
    # searcher reads the metric only from a trial's final result.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Short trials checkpoint often; Tune's warning about snapshot frequency is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from raysweep.sweep.callbacks import MlflowTrialCallback
    from raysweep.sweep.connect import connect
    from raysweep.sweep.trainable import run_trial, trial_resources
    from raysweep.sweep.tune_searcher import TuneCellSearcher
    from raysweep.sweep.warm_actors import keep_actors_warm

    lattice = lattice_of(spec)
    results_dir = results_dir.resolve()
    sweep_dir = results_dir / spec.name
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(f"expected a writable folder, got {results_dir} ({err.strerror})", key="--results") from None
    # The cluster first: resources it cannot hold are a one-line error before an MLflow experiment
    # or an Optuna study exists (nothing created for a sweep that cannot run).
    if verbose < 2:  # quiet faults: the callback prints one line per lost worker or trial
        route_ray_logs(sweep_dir / "ray-driver.log")
        # Tune's new console output prints a configuration box even when silent; the classic one does not
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    connection = connect(log_to_driver=verbose >= 2)
    lease: lease_of.Lease | None = None
    stop = Watch()
    signals = contextlib.ExitStack()
    try:
        signals.enter_context(sigterm_as_interrupt(stop))  # after ray.init, whose SIGTERM handlers it overrides
        if verbose >= 1:
            print(f"raysweep: running on {connection.how}", flush=True)
        concurrent = concurrency(spec, ray.cluster_resources())
        if concurrent < spec.resources.concurrent_trials and verbose >= 1:
            print(f"raysweep: the cluster fits {concurrent} of the {spec.resources.concurrent_trials} concurrent trials "
                  f"asked for (resources.concurrent_trials); running {concurrent} at a time", flush=True)
        tracker = open_tracker(tracking_uri, spec.tracking.experiment, journal_dir=sweep_dir)
        searcher, study, lease = open_searcher(spec, lattice, sweep_dir, resume=resume, warm_start=warm_start)
        parent, earlier_runs = open_parent(tracker, spec, source=source, n_cells=lattice.n_cells(), study=study,
                                           resume=resume)
        keep_actors_warm(concurrent)
        callback = MlflowTrialCallback(tracker, parent, spec, concurrent=concurrent,
                                       progress=(lambda line: print(line, flush=True)) if verbose >= 1 else None,
                                       earlier_runs=earlier_runs, max_failures=spec.resources.max_failures)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, spec_dict=spec.to_dict(), storage_path=str(results_dir / "train"),
                                compile_cache=str(results_dir / "xla_cache")),
            trial_resources(spec),
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=TuneCellSearcher(searcher, lattice, study=study),
                num_samples=-1,  # until the searcher says FINISHED
                max_concurrent_trials=concurrent,
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(results_dir / "tune"),
                callbacks=[callback, JsonLoggerCallback()],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                # A trial process that dies (a lost node, a killed local-mode trial) is restarted by Tune
                # with the same config, hence the same key and Train run: it resumes from its checkpoint.
                failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
                verbose=1 if verbose >= 2 else 0,  # 2: Ray Tune's own trial tables as well
                stop=trial_budget(callback, max_trials) if max_trials else None,
            ),
        )
        t0 = time.monotonic()
        failed = interrupted = False
        try:
            with interrupt_watch(stop):
                tuner.fit()
            interrupted = stop.fired
        except BaseException:
            failed = True
            raise
        finally:
            wall = time.monotonic() - t0
            outcome = _close(spec, lattice, tracker, parent, callback, wall, tracking_uri, failed, searcher, study)
            unsent = tracker.close(spec.tracking.flush_timeout_s)  # the journal keeps whatever is unsent
            outcome = dataclasses.replace(outcome, interrupted=interrupted, interrupted_by=stop.signum, unsent=unsent,
                                          parent_run_id=tracker.resolve(parent))
    finally:
        if connection.started:
            ray.shutdown()
        if lease is not None:
            lease.release()
        signals.close()
    return outcome


def route_ray_logs(path: Path) -> None:
    """Send Ray Tune's and Train's driver-side logs (their multi-line error dumps among them) to a
    file in the sweep's folder instead of the console. The workers' own output stays in Ray's
    session logs (`log_to_driver=False`); `--ray-output` shows both."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    replaced: set[logging.Handler] = set()
    for name in ("ray.tune", "ray.train", "ray.air", "ray.util"):
        logger = logging.getLogger(name)
        replaced.update(logger.handlers)
        logger.handlers = [handler]
        logger.propagate = False
    for old in replaced:  # an earlier sweep's file in this process (tests run many): close it, not leak it
        old.close()


def latest_study(storage: str, name: str) -> str | None:
    """The newest study `new_study_name(name)` made in `storage` (per-cell studies `<study>/<cell>` count)."""
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        return None
    import optuna

    pattern = re.compile(rf"{re.escape(name)}-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}")
    stems = {n.split("/", 1)[0] for n in optuna.get_all_study_names(storage)}
    ours = sorted(n for n in stems if pattern.fullmatch(n))
    return ours[-1] if ours else None


def trial_budget(callback: Any, limit: int) -> Any:
    """A Tune stopper: stop every trial once `limit` trials have finished in this session."""
    from ray.tune.stopper import Stopper

    class TrialBudget(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return sum(r.status != "running" for r in callback.records.values()) >= limit

    return TrialBudget()


def _trial_dirname(trial: Any) -> str:
    c = trial.config
    return f"{trial.trial_id}_{c['model']}_e{c['epochs']:g}_lr{c['lr']:g}"


def concurrency(spec: SweepSpec, cluster: dict[str, float]) -> int:
    """How many trials can run at once: the spec's ask, capped by what the cluster holds (the device
    decides what a trial holds: CPUs, GPUs, or a whole TPU slice)."""
    from raysweep.devices import device_for

    fits, _ = device_for(spec.resources).concurrency(cluster)
    return fits


def open_searcher(spec: SweepSpec, lattice: Lattice, sweep_dir: Path, *,
                  resume: bool, warm_start: WarmPlan | None = None) -> tuple[Any, str, lease_of.Lease]:
    """The sweep's searcher over its Optuna study (a new study, or with `resume` the newest one),
    and the lease that keeps a second driver off the study until `release()`."""
    # From the environment where the URL holds a password (a cluster's PostgreSQL): never in a file
    storage = (spec.search.storage or os.environ.get("RAYSWEEP_OPTUNA_STORAGE")
               or f"sqlite:///{sweep_dir / 'optuna.db'}")
    # ... and then it is named, not shown, in errors
    shown = repr(storage) if storage != os.environ.get("RAYSWEEP_OPTUNA_STORAGE") else "$RAYSWEEP_OPTUNA_STORAGE"
    if resume and spec.search.searcher == "grid":
        raise SpecError("the grid searcher keeps no study to resume; expected a searcher such as monotone",
                        key="search.searcher")
    try:
        study = latest_study(storage, spec.name) if resume else new_study_name(spec.name)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy and Optuna raise many types for a bad URL
        raise SpecError(f"expected an Optuna storage URL such as sqlite:////abs/path.db, got {shown} "
                        f"({type(err).__name__})", key="search.storage") from None
    if study is None:
        raise SpecError(f"no earlier study of sweep {spec.name!r} in {shown} to resume", key="--resume")
    # before the searcher opens the study: opening it marks the trials left running as interrupted
    lease = lease_of.acquire(storage, study, key="--resume" if resume else "search.storage",
                             shown=None if shown == repr(storage) else shown)
    try:
        searcher = make_searcher(spec.search.searcher, lattice, start_lr=spec.lr.base,
                                 slowness=spec.search.slowness, tie_tolerance=spec.search.tie_tolerance,
                                 trials_per_cell=spec.search.trials_per_cell, seed=spec.search.seed,
                                 max_retries=spec.search.max_retries,
                                 storage=storage, study_name=study, warm_start=warm_start)
    except ValueError as err:  # e.g. resuming a study made for another lattice
        lease.release()
        raise SpecError(str(err), key="--resume" if resume else "search") from None
    except Exception as err:  # noqa: BLE001
        lease.release()
        raise SpecError(f"expected a usable Optuna storage, got {shown}: {type(err).__name__}"
                         + (f": {err}" if shown == repr(storage) else ""),  # a driver's message may quote the URL
                        key="search.storage") from None
    return searcher, study, lease


def open_tracker(uri: str, experiment: str, *, journal_dir: Path | None = None) -> SweepTracker:
    try:
        return SweepTracker(uri, experiment, journal_dir=journal_dir)
    except Exception as err:  # noqa: BLE001 - MLflow raises many types for an unusable store
        raise SpecError(f"expected a reachable MLflow tracking URI, got {uri!r}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}", key="--tracking-uri") from None


def new_study_name(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def open_parent(tracker: SweepTracker, spec: SweepSpec, *, source: str, n_cells: int, study: str,
                resume: bool) -> tuple[str, dict[str, Any]]:
    """The sweep's parent run and, when resuming, the child runs earlier sessions left, by trial key.

    A resumed sweep continues under its original parent run (one sweep, one parent, however many
    drivers it took), so its trials keep one child run per key.
    """
    if resume:
        parents = tracker.sweep_runs(study)
        if parents:
            tracker.reopen_sweep(parents[0])
            return parents[0], tracker.trial_runs(study)
    return tracker.start_sweep(spec, source=source, n_cells=n_cells, study=study), {}


def _reconcile_leftovers(tracker: SweepTracker, callback: Any) -> int:
    """Close the child runs an earlier, killed driver left RUNNING that this session did not continue:
    their trials were not proposed again, so they are `stopped` (MLflow KILLED), never RUNNING forever."""
    n = 0
    for run in callback.earlier_runs.values():
        if run.mlflow_status == "RUNNING":
            tracker.end_trial(run.run_id, status=TrialStatus.STOPPED)
            n += 1
    return n


def _close(spec: SweepSpec, lattice: Lattice, tracker: SweepTracker, parent: str, callback: Any, wall: float,
           tracking_uri: str, failed: bool, searcher: Any, study: str) -> SweepOutcome:
    records = list(callback.records.values())
    for rec in records:  # a trial cut off by a stop or an interrupt is still closed in MLflow
        if rec.status == TrialStatus.RUNNING:
            callback._finish(rec, TrialStatus.STOPPED.value)
    _reconcile_leftovers(tracker, callback)
    trials = [TrialRow(model=r.model, epochs=r.epochs, lr=r.lr, status=r.status, val_loss=r.val_loss,
                       val_acc=float(r.last.get("val/acc", math.nan)), flops=float(r.last.get("compute/flops", 0.0)),
                       run_id=r.run_id) for r in records if r.status != "stopped"]  # stopped: no result
    earlier: list[TrialRow] = []
    if spec.search.searcher != "grid":  # a resumed study: earlier sessions' trials belong to this sweep
        earlier = tracker.earlier_trials(study, exclude_runs={r.run_id for r in records})
        trials += earlier
    settled = {(lattice.models[c.m], lattice.epochs[c.e]): lr for c, lr in searcher.settled().items()}
    rows = summarize(trials, models=lattice.models, epochs=lattice.epochs, settled=settled)
    for row in rows:
        if row.best_run_id:
            tracker.set_tags(row.best_run_id, {"raysweep.best_in_cell": "true", "raysweep.settled_lr": f"{row.best_lr:g}"})
    _untag_overtaken(tracker, earlier, {row.best_run_id for row in rows})
    whole = [r for r in records if r.status in ("ok", "diverged")]
    med_wall = median(r.wall_s for r in whole)
    med_loop = median(r.loop_s for r in whole)
    med_over = median(r.overhead_s for r in whole)
    ideal = sum(r.wall_s for r in records if math.isfinite(r.wall_s)) / callback.concurrent
    metrics = {"sweep/wall_s": wall, "sweep/ideal_s": ideal, "sweep/trials": len(records), "sweep/cells": len(rows),
               "sweep/median_trial_wall_s": med_wall, "sweep/median_loop_s": med_loop,
               "sweep/median_overhead_s": med_over,
               "sweep/total_flops": sum(t.flops for t in trials)}
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    # MLflow tag keys may not hold '@': the cell nfnet_t0@0.5 becomes raysweep.settled.nfnet_t0:0.5
    tags = {f"raysweep.settled.{row.cell.replace('@', ':')}": (f"{row.best_lr:g}" if row.best_lr is not None else "none") for row in rows}
    with tempfile.TemporaryDirectory() as d:
        txt = Path(d) / "summary.txt"
        txt.write_text(format_summary(rows) + "\n")
        csv = Path(d) / "trials.csv"
        csv.write_text("model,epochs,lr,status,val_loss,val_acc,flops,wall_s,loop_s,run_id\n" + "".join(
            f"{r.model},{r.epochs:g},{r.lr:g},{r.status},{r.val_loss},{r.last.get('val/acc', '')},"
            f"{r.last.get('compute/flops', '')},{r.wall_s:.3f},{r.loop_s:.3f},{tracker.resolve(r.run_id)}\n"
            for r in records))
        png = plot_lr_curves(trials, rows, models=lattice.models, epochs=lattice.epochs, path=Path(d) / "lr_curves.png")
        tracker.end_sweep(parent, summary_rows=[_jsonable(dataclasses.asdict(r)) for r in rows], metrics=metrics,
                          tags=tags, artifacts=[txt, csv, png], failed=failed)
    return SweepOutcome(parent, tracking_uri, rows, len(records), wall, med_wall, med_loop, med_over, ideal)


def _untag_overtaken(tracker: SweepTracker, earlier: list[TrialRow], best: set[str]) -> None:
    """An earlier session tagged the best run of each cell as it stood then; a trial of a later
    session may have beaten it. Only one run per cell keeps `best_in_cell`."""
    ids = {t.run_id for t in earlier if t.run_id} - best
    if not ids:
        return
    from mlflow.exceptions import MlflowException

    from raysweep.tracking_writer import is_transient

    try:
        tagged = tracker.client.search_runs([tracker.experiment_id], max_results=5000,
                                            filter_string=f"tags.`{Tag.BEST_IN_CELL}` = 'true'")
        for run in tagged:
            if run.info.run_id in ids:
                tracker.client.delete_tag(run.info.run_id, Tag.BEST_IN_CELL)
                tracker.client.delete_tag(run.info.run_id, Tag.SETTLED_LR)
    except MlflowException as err:  # the store is down: the tags are fixed by the next resume's close
        if not is_transient(err):
            raise


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf or NaN: a cell with no finished trial reads as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
