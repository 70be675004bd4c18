"""Closing a sweep: every trial's MLflow run ended, the per-cell summary computed (with the trials of
earlier sessions of a resumed study), the best run of each cell tagged, and the parent run ended
with the summary, its table of trials and the LR curves attached."""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysweep.analysis.plots import plot_lr_curves
from raysweep.analysis.summary import CellRow, format_summary, median, summarize
from raysweep.config import SweepSpec
from raysweep.core.records import M, Tag, TrialStatus, cell_tag_name
from raysweep.core.space import Lattice
from raysweep.results.rows import TrialRow
from raysweep.search import searcher_row
from raysweep.tracking import SweepTracker
from raysweep.tracking.writer import Backlog, is_transient


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
    grid_edge: str | None = None  # `grid_edge_line`: the LR grid cut some cells' search short
    unsettled: tuple[str, ...] = ()  # cells the searcher has not settled (a stop, an interrupt, or a sweep cut short)
    # settled cells whose every trial failed (an error, not a diverged loss): nothing trained there
    all_failed: tuple[str, ...] = ()


_BOUNDS = (("high", "lr.high", "raise it above"), ("low", "lr.low", "lower it below"))


def _by_bound(blocked: Mapping[str, str]) -> list[tuple[str, str, list[str]]]:
    """(edge, key, cells) for each end of the grid some cell was blocked at, high first."""
    return [(edge, key, [c for c, e in blocked.items() if e == edge]) for edge, key, _ in _BOUNDS
            if edge in blocked.values()]


def grid_edge_line(blocked: Mapping[str, str], lrs: Sequence[float]) -> str | None:
    """The one line a sweep ends with when its searcher wanted an LR beyond the grid (cell name ->
    "high" or "low", `CellSearcher.blocked`) and could not try it; None when it never did. `lrs`:
    the grid, ascending; its ends are the LRs to go past."""
    if not blocked:
        return None
    end = {"high": lrs[-1], "low": lrs[0]}
    verb = {edge: v for edge, _, v in _BOUNDS}
    parts = [f"{key}: {verb[edge]} {end[edge]:g} (cells {', '.join(cells)})" for edge, key, cells in _by_bound(blocked)]
    return "raysweep: warning: the LR grid is too narrow, the searcher wanted to step past it: " + "; ".join(parts)


def grid_blocked_tag(blocked: Mapping[str, str]) -> str:
    """The parent run's `Tag.LR_GRID_BLOCKED`: "lr.high=cell,cell;lr.low=cell", or "none"."""
    return ";".join(f"{key}={','.join(cells)}" for _, key, cells in _by_bound(blocked)) or "none"


def earlier_trials(tracker: SweepTracker, study: str, *, exclude_runs: Iterable[str]) -> list[TrialRow]:
    """Finished trials of earlier sessions of the same sweep (a resumed study): every trial under
    the study's sweep run(s) but those of `exclude_runs` (this session's)."""
    from mlflow.exceptions import MlflowException

    from raysweep.results.mlflow_rows import read_trials

    try:
        parents = tracker.sweep_runs(study)
        if not parents:
            return []
        rows = read_trials(tracker.uri, tracker.experiment, parents, kinds=(Tag.KIND_TRIAL, Tag.KIND_FINETUNE_TRIAL))
    except MlflowException as err:  # the store is down: the summary covers this session only
        if not is_transient(err):
            raise
        print(f"raysweep: MLflow at {tracker.uri} is not answering; the summary leaves out earlier sessions",
              file=sys.stderr, flush=True)
        return []
    skip = {tracker.resolve(r) for r in exclude_runs}
    return [r for r in rows if r.run_id not in skip]


def _reconcile_leftovers(tracker: SweepTracker, callback: Any, searcher: Any = None) -> int:
    """Close the child runs an earlier, killed driver left RUNNING that this session did not continue:
    their trials were not proposed again, so they are `stopped` (MLflow KILLED), never RUNNING forever.
    One that search.early_stop had stopped (the study keeps the decision) gets its reason and saved FLOPs."""
    stops = searcher.early_stops() if hasattr(searcher, "early_stops") else {}
    n = 0
    for key, run in callback.earlier_runs.items():
        if run.mlflow_status == TrialStatus.RUNNING.mlflow_status:
            stop = stops.get(key)
            tracker.end_trial(run.run_id, status=TrialStatus.STOPPED,
                              metrics={M.SAVED_FLOPS: stop.saved_flops} if stop is not None else None,
                              tags={Tag.EARLY_STOP: stop.reason()} if stop is not None else None)
            n += 1
    return n


def close_sweep(spec: SweepSpec, lattice: Lattice, tracker: SweepTracker, parent: str, callback: Any, wall: float,
           tracking_uri: str, failed: bool, searcher: Any, study: str) -> SweepOutcome:
    records = list(callback.records.values())
    for rec in records:  # a trial cut off by a stop or an interrupt is still closed in MLflow
        if rec.status == TrialStatus.RUNNING:
            rec.early_stop = callback.early_stops.get(rec.trial_id)  # stopped by search.early_stop, not yet closed
            callback._finish(rec, TrialStatus.STOPPED.value)
    _reconcile_leftovers(tracker, callback, searcher)
    trials = [TrialRow(model=r.model, epochs=r.epochs, lr=r.lr, status=r.status, val_loss=r.val_loss,
                       val_acc=float(r.last.get(M.VAL_ACC, math.nan)), flops=float(r.last.get(M.FLOPS, 0.0)),
                       run_id=r.run_id) for r in records if r.status != TrialStatus.STOPPED]  # stopped: no result
    earlier: list[TrialRow] = []
    if searcher_row(spec.search.searcher).resumable:  # a resumed study: earlier sessions' trials belong to this sweep
        earlier = earlier_trials(tracker, study, exclude_runs={r.run_id for r in records})
        trials += earlier
    by_cell = searcher.settled()  # the prior searchers derive it from the whole study: once
    settled = {(lattice.models[c.m], lattice.epochs[c.e]): lr for c, lr in by_cell.items()}
    rows = summarize(trials, models=lattice.models, epochs=lattice.epochs, settled=settled)
    for row in rows:
        if row.best_run_id:
            tracker.set_tags(row.best_run_id, {Tag.BEST_IN_CELL: "true", Tag.SETTLED_LR: f"{row.best_lr:g}"})
    _untag_overtaken(tracker, earlier, {row.best_run_id for row in rows})
    whole = [r for r in records if TrialStatus(r.status).finished]
    med_wall = median(r.wall_s for r in whole)
    med_loop = median(r.loop_s for r in whole)
    med_over = median(r.overhead_s for r in whole)
    ideal = sum(r.wall_s for r in records if math.isfinite(r.wall_s)) / callback.concurrent
    metrics = {M.SWEEP_WALL_S: wall, M.SWEEP_IDEAL_S: ideal, M.SWEEP_TRIALS: len(records), M.SWEEP_CELLS: len(rows),
               M.SWEEP_MEDIAN_TRIAL_WALL_S: med_wall, M.SWEEP_MEDIAN_LOOP_S: med_loop,
               M.SWEEP_MEDIAN_OVERHEAD_S: med_over,
               # early-stopped trials spent their FLOPs up to the stop: they count
               M.SWEEP_TOTAL_FLOPS: sum(t.flops or 0.0 for t in trials) + sum(
                   float(r.last.get(M.FLOPS, 0.0)) for r in records if r.early_stop is not None)}
    stops = [r.early_stop for r in records if r.early_stop is not None]
    if stops:
        metrics[M.SWEEP_SAVED_FLOPS] = sum(e.saved_flops for e in stops)
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    # MLflow tag keys may not hold '@': the cell nfnet_t0@0.5 becomes raysweep.settled.nfnet_t0:0.5
    tags = {Tag.SETTLED_PREFIX + cell_tag_name(row.cell): (f"{row.best_lr:g}" if row.best_lr is not None else "none")
            for row in rows}
    blocked = {lattice.name(c): edge for c, edge in sorted(searcher.blocked().items())}
    tags[Tag.LR_GRID_BLOCKED] = grid_blocked_tag(blocked)
    with tempfile.TemporaryDirectory() as d:
        txt = Path(d) / "summary.txt"
        txt.write_text(format_summary(rows) + "\n")
        csv = Path(d) / "trials.csv"
        csv.write_text("model,epochs,lr,status,val_loss,val_acc,flops,wall_s,loop_s,run_id\n" + "".join(
            f"{r.model},{r.epochs:g},{r.lr:g},{r.status},{r.val_loss},{r.last.get(M.VAL_ACC, '')},"
            f"{r.last.get(M.FLOPS, '')},{r.wall_s:.3f},{r.loop_s:.3f},{tracker.resolve(r.run_id)}\n"
            for r in records))
        png = plot_lr_curves(trials, rows, models=lattice.models, epochs=lattice.epochs, path=Path(d) / "lr_curves.png")
        tracker.end_sweep(parent, summary_rows=[_jsonable(dataclasses.asdict(r)) for r in rows], metrics=metrics,
                          tags=tags, artifacts=[txt, csv, png], failed=failed)
    return SweepOutcome(parent, tracking_uri, rows, len(records), wall, med_wall, med_loop, med_over, ideal,
                        grid_edge=grid_edge_line(blocked, lattice.lrs),
                        unsettled=tuple(lattice.name(c) for c in lattice.cells() if c not in by_cell),
                        all_failed=tuple(row.cell for row in rows if row.best_lr is None and row.trials > 0
                                         and row.failed == row.trials))


def _untag_overtaken(tracker: SweepTracker, earlier: list[TrialRow], best: set[str]) -> None:
    """An earlier session tagged the best run of each cell as it stood then; a trial of a later
    session may have beaten it. Only one run per cell keeps `best_in_cell`."""
    ids = {t.run_id for t in earlier if t.run_id} - best
    if not ids:
        return
    from mlflow.exceptions import MlflowException

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
