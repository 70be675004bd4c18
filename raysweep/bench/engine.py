"""The replay engine: each searcher driven over a finished results table as it would run on a cluster.

Each searcher runs as in `raysweep.search.simulate`: `concurrency` trials in flight, each lasting its
core hours (else FLOPs) from the table, the earliest finishing first; a trial's loss is looked up in
the table instead of trained. `raysweep.bench.scores` turns the replays into scores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from raysweep.bench.peers import PEERS, replay_peer_runs
from raysweep.bench.scores import prior_checks, summarise
from raysweep.bench.table import Table, load_table
from raysweep.config import LrSpec, SearchSpec
from raysweep.core.errors import SpecError
from raysweep.core.records import TrialStatus
from raysweep.core.space import Cell
from raysweep.core.warm import WarmPlan
from raysweep.search import SEARCHER_TABLE, SEARCHERS, Outcome, make_searcher, quiet_optuna
from raysweep.search.early_stop import margin_of
from raysweep.search.simulate import simulate

ALL = tuple(row.name for row in SEARCHER_TABLE)
DETERMINISTIC = {row.name for row in SEARCHER_TABLE if row.deterministic}  # same trials every repetition
TREND_TARGET = 1.6  # trend mode's goal: at most this many trials per cell at monotone's hit rate
# raysweep's own searchers with its options on, replayed by their own code: `+es` is search.early_stop
# (the trial's evaluation points replayed along the table's curves), `warm` is search.warm_start from
# an earlier table (`run_replay(warm_start=...)`)
VARIANTS: dict[str, tuple[str, bool, bool]] = {  # name -> (searcher, early stop, warm start)
    "monotone+es": ("monotone", True, False),
    "warm": ("monotone", False, True),
    "warm+es": ("monotone", True, True),
}


def variants_for(*, curves: bool, warm: bool) -> list[str]:
    """The variants a table supports: early stopping needs curves, a warm start an earlier table."""
    return [v for v, (_, es, ws) in VARIANTS.items() if (curves or not es) and (warm or not ws)]


def run_replay(
    table_csv: str,
    *,
    searchers: Sequence[str] = ALL,
    repetitions: int = 20,
    concurrency: int = 2,
    seed: int = 0,
    sample_seeds: bool = False,
    slowness: int = SearchSpec.slowness,
    tie_tolerance: float = SearchSpec.tie_tolerance,
    trials_per_cell: int | None = None,
    start_lr: float = LrSpec.base,
    early_stop: str | float = "auto",
    warm_start: str | None = None,
) -> dict[str, Any]:
    """Replay each searcher `repetitions` times over the table; a JSON-able summary.

    `result["searchers"][name]` holds, averaged over repetitions: `mean_trials_per_cell`,
    `hit_rate` (share of cells settled on the table's best LR), `hit_rate_within_noise` (also
    counting a cell settled on an LR whose loss the seeds cannot tell from the best's: a paired
    t-test over the `seed` column at 95%), `mean_regret` / `max_regret`
    ((loss - best) / best over cells settled on a finished run), `settled_diverged` (cells settled on
    a diverged or missing run), `total_flops`, `makespan` (simulated time to finish),
    `full_trials_per_cell` (FLOPs per settled cell in full trials of that cell: a trial stopped at
    fraction f of its budget counts f), `missing_trials` (runs the table lacks, replayed as failed), `cells`, `misses` (cells settled
    off the best in some repetition, each with its `gap`, `gap_se`, `within_noise` and `verdict`) and `prior_violations` (a property of the table, repeated
    from the top level). `result["trend"]` checks trend mode against its 1.6 trials-per-cell goal.

    Losses are the mean over seeds, or with `sample_seeds` one seed drawn per run and repetition.
    tpe and random get `trials_per_cell` trials per cell, by default monotone's mean rounded up.
    `start_lr` is snapped to the table's nearest LR. Non-finite numbers come out as None.
    `searchers` may also name peers (`raysweep.bench.peers.PEERS`: Tune's schedulers and Optuna's
    pruners, replaying partial trials along the table's curves); the Optuna peers run
    `trials_per_cell` trials per cell when it is given, else one per LR of the grid.
    `searchers` may also name `VARIANTS`: monotone with `search.early_stop` at margin `early_stop`
    (`+es`: each trial reports the table's curve points and may stop there, charged the share it
    ran), and monotone warm-started from the earlier table `warm_start` (`warm`, `warm+es`).
    """
    unknown = [s for s in searchers if s not in SEARCHERS and s not in PEERS and s not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown searcher(s) {unknown}; expected some of "
                         f"{sorted(SEARCHERS) + sorted(VARIANTS) + sorted(PEERS)}")
    if repetitions < 1 or concurrency < 1:
        raise ValueError(
            f"`repetitions >= 1` and `concurrency >= 1` must hold, got {repetitions}, {concurrency}"
        )
    table = load_table(table_csv)
    lat = table.lattice
    warm_plan = _warm_plan(table, warm_start) if any(VARIANTS.get(s, ("", False, False))[2] for s in searchers) else None
    start = min(lat.lrs, key=lambda lr: (abs(math.log(lr / start_lr)), -lr))
    best = {c: table.best(c, tie_tolerance) for c in lat.cells()}
    options = {"start_lr": start, "slowness": slowness, "tie_tolerance": tie_tolerance}
    budget_from_monotone = trials_per_cell is None
    entries: dict[str, dict[str, Any]] = {}
    peer_trials = trials_per_cell
    order = sorted(searchers, key=lambda s: s != "monotone")  # monotone first: it sizes tpe / random
    if budget_from_monotone and {"tpe", "random"} & set(searchers) and "monotone" not in searchers:
        order.insert(0, "monotone")
    with quiet_optuna():
        for name in order:
            if name in PEERS:
                reps = 1 if PEERS[name].library == "tune" and not sample_seeds else repetitions
                peer_runs = replay_peer_runs(table, name, [seed + rep for rep in range(reps)],
                                             concurrency=concurrency, sample_seeds=sample_seeds,
                                             trials_per_cell=peer_trials, start_lr=start)
                entries[name] = summarise(table, best, peer_runs)
                entries[name]["peer"] = PEERS[name].note
                continue
            if name in ("tpe", "random") and trials_per_cell is None:
                trials_per_cell = math.ceil(round(entries["monotone"]["mean_trials_per_cell"], 6))
            base, stops, warm = VARIANTS.get(name, (name, False, False))
            extra: dict[str, Any] = {}
            if stops:
                extra["early_stop"] = early_stop
            if warm:
                extra["warm_start"] = warm_plan
            reps = 1 if base in DETERMINISTIC and not sample_seeds else repetitions
            runs = [
                _replay_once(
                    table,
                    base,
                    rep,
                    seed,
                    sample_seeds,
                    concurrency,
                    dict(options, trials_per_cell=trials_per_cell or 2, seed=seed + rep, **extra),
                    curves=stops,
                )
                for rep in range(reps)
            ]
            entries[name] = summarise(table, best, runs)
            if stops:
                entries[name]["early_stop_margin"] = margin_of(early_stop)
                entries[name]["stopped_per_cell"] = sum(r["stopped"] for r in runs) / len(runs) / lat.n_cells()
            if warm and warm_plan is not None:
                entries[name]["warm_start"] = warm_plan.source
    violations, too_fast = prior_checks(table, best, slowness)
    for entry in entries.values():
        entry["prior_violations"] = violations
    result: dict[str, Any] = {
        "table": {
            "path": table_csv,
            "models": list(lat.models),
            "epochs": list(lat.epochs),
            "lrs": list(lat.lrs),
            "cells": lat.n_cells(),
            "rows": table.n_rows,
            "cells_without_data": [lat.name(c) for c, b in best.items() if b is None],
            "best_lr": {lat.name(c): (lat.lrs[b] if b is not None else None) for c, b in best.items()},
        },
        "settings": {
            "repetitions": repetitions,
            "concurrency": concurrency,
            "seed": seed,
            "sample_seeds": sample_seeds,
            "slowness": slowness,
            "tie_tolerance": tie_tolerance,
            "trials_per_cell": trials_per_cell,
            "start_lr": start,
            "early_stop_margin": margin_of(early_stop),
            "warm_start": warm_start,
        },
        "searchers": {name: entries[name] for name in searchers},
        "prior_violations": violations,
        "slowness_violations": too_fast,
    }
    if "trend" in entries:
        trend, mono = entries["trend"], entries.get("monotone")
        base_hits = mono["hit_rate"] if mono else None
        result["trend"] = {
            "mean_trials_per_cell": trend["mean_trials_per_cell"],
            "hit_rate": trend["hit_rate"],
            "monotone_hit_rate": base_hits,
            "target_trials_per_cell": TREND_TARGET,
            "meets_target": bool(
                trend["mean_trials_per_cell"] <= TREND_TARGET
                and (base_hits is None or trend["hit_rate"] >= base_hits - 1e-9)
            ),
        }
    return _json_safe(result)


def _replay_once(
    table: Table,
    name: str,
    rep: int,
    seed: int,
    sample_seeds: bool,
    concurrency: int,
    options: dict[str, Any],
    *,
    curves: bool = False,
) -> dict[str, Any]:
    """One replay of searcher `name` over the table: its trials, FLOPs, makespan and settled LRs.
    With `curves`, each trial reports the table's evaluation points on the way (search.early_stop)."""
    lat = table.lattice
    rng = random.Random(f"{seed}/{rep}")
    drawn: dict[tuple[Cell, int], int | None] = {}  # the seed row drawn (None: the mean over seeds)
    missing = 0

    def row_of(cell: Cell, i: int) -> int | None:
        if sample_seeds and (cell, i) not in drawn:  # one draw per run and repetition, whoever asks
            rows = table.runs.get((cell, i))
            drawn[(cell, i)] = rng.randrange(len(rows)) if rows else None
        return drawn.get((cell, i))

    def evaluate(cell: Cell, lr: float) -> Outcome:
        nonlocal missing
        i = lat.lr_index(lr)
        loss = table.loss_at(cell, i, 1.0, row_of(cell, i))
        if loss is None:
            missing += 1
            return Outcome(math.inf, TrialStatus.FAILED)
        return Outcome(loss, TrialStatus.OK) if math.isfinite(loss) else Outcome(math.inf, TrialStatus.DIVERGED)

    def curve(cell: Cell, lr: float) -> list[tuple[float, float]]:
        i = lat.lr_index(lr)
        row = row_of(cell, i)
        points = [(f, table.loss_at(cell, i, f, row)) for f in table.fracs(cell, i) if f < 1]
        return [(f, v) for f, v in points if v is not None]

    # a run missing from the table fails the same way however often it is retried: no retries
    searcher = make_searcher(
        name, lat, storage=None, study_name=f"replay-{name}-{rep}", max_retries=0, **options
    )
    run = simulate(
        searcher,
        evaluate,
        concurrency=concurrency,
        duration=lambda cell, lr: table.duration(cell, lat.lr_index(lr)),
        curve=curve if curves else None,
    )
    return {
        "trials": len(run.trials),
        "flops": sum(t.frac * table.flops(t.proposal.cell, lat.lr_index(t.proposal.lr)) for t in run.trials),
        "full_trials": sum(table.cost(t.proposal.cell, lat.lr_index(t.proposal.lr), t.frac) for t in run.trials),
        "stopped": sum(t.stopped is not None for t in run.trials),
        "makespan": run.makespan,
        "missing": missing,
        "settled": {c: lat.lr_index(lr) for c, lr in run.settled.items()},
    }


def _warm_plan(table: Table, source: str | None) -> WarmPlan:
    """search.warm_start over the table's cells: the earlier study `source` (a results CSV) fitted as a
    sweep fits it, each cell's forecast from its size (the table's model_params) and budget."""
    if source is None:
        raise ValueError("the warm-started variants need an earlier study: run_replay(warm_start=CSV)")
    from raysweep.analysis.runs import load_csv
    from raysweep.analysis.warm_start import WarmStartError, fit_warm_start

    unsized = [m for m in table.lattice.models if m not in table.sizes]
    if unsized:
        raise SpecError(f"expected a model_params column sizing every model for a warm start, got none for {unsized}",
                        file=table.path, key="column model_params")
    try:
        warm = fit_warm_start(load_csv(source), source)
    except WarmStartError as err:
        raise SpecError(f"expected an earlier study with an LR trend, got {err}", key="--warm-start") from None
    lat = table.lattice
    return warm.plan({lat.name(c): (table.sizes[lat.models[c.m]], lat.epochs[c.e]) for c in lat.cells()})


def _json_safe(x: Any) -> Any:
    """`x` with every non-finite float as None: JSON has no inf or nan."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x
