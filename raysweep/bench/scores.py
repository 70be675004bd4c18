"""The replay's scores: trials per cell, hits (exact and within seed noise), regret, and where the
table itself breaks the prior the searchers assume.

Pure functions of a `Table` and the replays `raysweep.bench.engine` ran; no searcher runs here.
"""

from __future__ import annotations

import collections
import math
from typing import Any

from raysweep.bench.table import Table
from raysweep.core.records import TrialStatus
from raysweep.core.space import Cell

NOISE_LEVEL = 0.95  # a gap inside this t-interval (over seeds) is one the table cannot resolve
MIN_SEEDS = 5  # fewer seeds give no verdict on noise (the t-interval of 2-3 seeds spans almost anything)


def summarise(table: Table, best: dict[Cell, int | None], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One searcher's entry in `run_replay`'s result, averaged over its replays `runs` (each
    `_replay_once`'s dict); `best` is the table's best LR index per cell (None without data)."""
    lat = table.lattice
    known = {c: i for c, i in best.items() if i is not None}  # cells the table has data for
    scored = [c for c in lat.cells() if c in known]
    hits, near, regrets = [], [], []
    settled_at: dict[Cell, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    noise: dict[tuple[Cell, int], dict[str, Any]] = {}  # (cell, settled LR) -> its comparison with the best

    def noise_of(c: Cell, got: int) -> dict[str, Any]:
        if (c, got) not in noise:
            noise[(c, got)] = noise_fields(table, c, got, known[c])
        return noise[(c, got)]

    for run in runs:
        for c in scored:
            got = run["settled"][c]
            settled_at[c][got] += 1
            hits.append(got == known[c])
            near.append(got == known[c] or noise_of(c, got)["within_noise"] is True)
            regrets.append(regret(table.mean_loss(c, got), table.mean_loss(c, known[c])))
    n = len(runs)
    misses = []
    for c in scored:
        wrong = collections.Counter({i: k for i, k in settled_at[c].items() if i != known[c]})
        if wrong:
            got = wrong.most_common(1)[0][0]  # the most frequent wrong LR
            misses.append(
                {
                    "cell": lat.name(c),
                    "settled": lat.lrs[got],
                    "best": lat.lrs[known[c]],
                    "miss_rate": sum(wrong.values()) / n,
                    **noise_of(c, got),
                }
            )
    trials = sum(r["trials"] for r in runs) / n
    finite = [x for x in regrets if math.isfinite(x)]
    return {
        "mean_trials_per_cell": trials / lat.n_cells(),
        "hit_rate": sum(hits) / len(hits) if hits else None,
        # hits, plus misses whose loss the seeds cannot tell from the best's (paired t-test, 95%)
        "hit_rate_within_noise": sum(near) / len(near) if near else None,
        # regret over cells settled on a finished run; the others are counted apart
        "mean_regret": sum(finite) / len(finite) if finite else None,
        "max_regret": max(finite, default=None),
        "settled_diverged": (len(regrets) - len(finite)) / n,
        "total_flops": sum(r["flops"] for r in runs) / n,
        # FLOPs per settled cell in full trials of that cell (a trial stopped at fraction f counts f)
        "full_trials_per_cell": sum(r["full_trials"] for r in runs) / n / lat.n_cells(),
        "cells": lat.n_cells(),
        "mean_trials": trials,
        "makespan": sum(r["makespan"] for r in runs) / n,
        "missing_trials": sum(r["missing"] for r in runs) / n,
        "repetitions": n,
        "misses": misses,
    }


def noise_fields(table: Table, cell: Cell, got: int, best: int) -> dict[str, Any]:
    """How LR index `got` compares with `best` in `cell`, over seeds. `gap`: relative loss excess;
    `gap_se`: its standard error; `within_noise`: True when the seeds cannot tell the two apart
    (paired t-test, 95%), False when they can, None when there is nothing to judge by;
    `verdict`: within, beyond, unknown (fewer than `MIN_SEEDS` seeds), diverged or missing (no run)."""
    gap = table.gap(cell, got, best)
    if gap is None:
        return {"gap": None, "gap_se": None, "within_noise": None, "verdict": "missing"}
    # with few seeds a t-test has no power: every gap "cannot be told apart", which says nothing
    within = gap.within_noise(NOISE_LEVEL) if gap.df is None or gap.df >= MIN_SEEDS - 1 else None
    if not math.isfinite(gap.rel):
        verdict = TrialStatus.DIVERGED.value
    else:
        verdict = {True: "within", False: "beyond", None: "unknown"}[within]
    return {"gap": gap.rel, "gap_se": gap.se, "within_noise": within, "verdict": verdict}


def regret(loss: float | None, best: float | None) -> float:
    """(loss - best) / best; a settled LR missing from the table or diverged has infinite regret."""
    if loss is None or best is None:
        return math.inf
    if loss == best:
        return 0.0
    if not math.isfinite(loss):
        return math.inf
    return (loss - best) / abs(best) if best else loss - best


def prior_checks(table: Table, best: dict[Cell, int | None], slowness: int) -> tuple[list[Any], list[Any]]:
    """Cells whose best LR rises above a predecessor's, and cells that fall more than `slowness`
    steps below their bound: where the table breaks the prior the searchers assume."""
    lat = table.lattice
    known = {c: i for c, i in best.items() if i is not None}
    rises, falls = [], []
    for c, i in known.items():
        preds = [p for p in lat.predecessors(c) if p in known]
        if not preds:
            continue
        for p in preds:
            if i > known[p]:
                rises.append(
                    {
                        "cell": lat.name(c),
                        "lr": lat.lrs[i],
                        "predecessor": lat.name(p),
                        "predecessor_lr": lat.lrs[known[p]],
                        # how much worse this cell does at the predecessor's LR than at its best
                        **noise_fields(table, c, known[p], i),
                    }
                )
        bound = min(known[p] for p in preds)
        if i < bound - slowness:
            falls.append(
                {"cell": lat.name(c), "lr": lat.lrs[i], "bound": lat.lrs[bound], "steps_below": bound - i}
            )
    return rises, falls
