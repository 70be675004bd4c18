"""Runs one sweep: MLflow parent run, searcher, Ray Tune experiment, summary.

`run_sweep` is the only function the CLI calls to launch work; everything it needs has been
validated before it is called, so a typo never starts Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raysweep.config import SweepSpec
from raysweep.core.errors import SpecError
from raysweep.core.records import TrialStatus
from raysweep.core.space import Lattice
from raysweep.core.warm import WarmPlan
from raysweep.search import lease as lease_of
from raysweep.search import make_searcher, searcher_row
from raysweep.sweep.closing import SweepOutcome, close_sweep
from raysweep.sweep.stop_signals import Watch, interrupt_watch, sigterm_as_interrupt
from raysweep.tracking import SweepTracker


def lattice_of(spec: SweepSpec) -> Lattice:
    return Lattice(models=spec.ladder.rungs, epochs=spec.epochs, lrs=spec.lr_grid())


def run_sweep(spec: SweepSpec, *, source: str, tracking_uri: str, results_dir: Path | str,
              verbose: int = 1, max_trials: int | None = None, resume: bool = False,
              warm_start: WarmPlan | None = None, units: Mapping[str, Any] | None = None,
              parent_tags: Mapping[str, str] | None = None) -> SweepOutcome:
    """Run the sweep to the end, or stop it once `max_trials` trials have finished in this session.

    verbose: 0 quiet, 1 a line per finished trial, 2 plus Ray Tune's own tables. A searcher that
    keeps its study in Optuna storage (every one but `grid`) resumes where a stopped or killed
    session left off when the same sweep runs again with `resume=True`; otherwise every run starts
    a new study named `<name>-<timestamp>`. `warm_start` (`raysweep.cli.warm_plan`) gives every cell
    its first LR from an earlier study's trend; a resumed study keeps the one it was created with.

    A fine-tuning sweep (`raysweep.finetune.units`) passes its `units` (name -> plain data, in
    order): the lattice's models are the units, each trial starts where its unit says; and the
    `parent_tags` of its parent run (its kind, the pre-training parents it read).
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
    from raysweep.sweep.cell_scheduler import CellScheduler
    from raysweep.sweep.connect import connect
    from raysweep.sweep.early_stop import EarlyStopScheduler
    from raysweep.sweep.trainable import run_trial, trial_resources, tune_storage
    from raysweep.sweep.tune_searcher import TuneCellSearcher
    from raysweep.sweep.warm_actors import keep_actors_warm

    lattice = lattice_of(spec) if units is None else Lattice(models=tuple(units), epochs=spec.epochs,
                                                              lrs=spec.lr_grid(), independent=True)
    from raysweep.data.store import driver_folder, is_remote

    if is_remote(results_dir):  # checkpoints in the bucket; the study (SQLite), journal and logs here
        results = str(results_dir).rstrip("/")
        local = driver_folder(results)
        if verbose >= 1:
            print(f"raysweep: results and checkpoints in {results}; the driver's files (Optuna study unless "
                  f"search.storage, tracking journal, Ray log) in {local / spec.name}", flush=True)
    else:
        local = Path(results_dir).resolve()
        results = str(local)
    sweep_dir = local / spec.name
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(f"expected a writable folder, got {local} ({err.strerror})", key="--results") from None
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
                                           resume=resume, tags=parent_tags)
        keep_actors_warm(concurrent)
        tune_searcher = TuneCellSearcher(searcher, lattice, study=study)
        callback = MlflowTrialCallback(tracker, parent, spec, concurrent=concurrent,
                                       progress=(lambda line: print(line, flush=True)) if verbose >= 1 else None,
                                       earlier_runs=earlier_runs, max_failures=spec.resources.max_failures,
                                       train_storage=f"{results}/train", units=units,
                                       early_stops=tune_searcher.early_stopped)
        scheduler: Any = None
        if spec.search.early_stop is not None:  # FIFO, plus a STOP when the searcher stops a trial at an eval point
            scheduler = EarlyStopScheduler(tune_searcher)
        elif (asha := spec.search.scheduler_spec()) is not None:  # Tune's ASHA, one per cell
            scheduler = CellScheduler(tune_searcher, asha, points=spec.eval_points)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, spec_dict=spec.to_dict(), storage_path=f"{results}/train",
                                compile_cache=str(local / "xla_cache"), units=units),
            trial_resources(spec),
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=tune_searcher,
                scheduler=scheduler,
                num_samples=-1,  # until the searcher says FINISHED
                max_concurrent_trials=concurrent,
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                **tune_storage(f"{results}/tune"),
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
            outcome = close_sweep(spec, lattice, tracker, parent, callback, wall, tracking_uri, failed, searcher, study)
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
            return sum(r.status != TrialStatus.RUNNING for r in callback.records.values()) >= limit

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
    if resume and not searcher_row(spec.search.searcher).resumable:
        raise SpecError(f"the {spec.search.searcher} searcher keeps no study to resume; expected a searcher such as "
                        "monotone", key="search.searcher")
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
                                 storage=storage, study_name=study, warm_start=warm_start,
                                 early_stop=spec.search.early_stop.margin if spec.search.early_stop else None)
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
                resume: bool, tags: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The sweep's parent run and, when resuming, the child runs earlier sessions left, by trial key.

    A resumed sweep continues under its original parent run (one sweep, one parent, however many
    drivers it took), so its trials keep one child run per key.
    """
    if resume:
        parents = tracker.sweep_runs(study)
        if parents:
            tracker.reopen_sweep(parents[0])
            return parents[0], tracker.trial_runs(study)
    return tracker.start_sweep(spec, source=source, n_cells=n_cells, study=study, tags=tags), {}
