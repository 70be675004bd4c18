"""Warm start, measured by replay: a second sweep whose cells take their first LR from an earlier
study's fitted trend, against plain monotone, on the recorded full-grid tables.

The earlier study is the table's smaller rungs and shorter budgets (the lower ~half of each axis):
`raysweep.analysis.lr_trend` fits log lr* = c + p log N + q log epochs to their best LRs. Every other
cell is then replayed twice, with the losses looked up in the table (mean over seeds):

- plain monotone: the searcher's own rule (`raysweep.search._prior.PriorRule`), over the whole lattice
  in order, each cell bounded by its settled predecessors (the first cell starts at 1.6, as
  `raysweep bench searcher` does);
- warm start: the same rule in trend mode, with the earlier study's forecast as the cell's prediction
  and its nearest grid LR as the bound. One trial when the forecast sits within 0.35 grid steps of a
  grid point, else the two grid points around it; the cell settles on the better.

Scores, over the replayed cells only: trials per cell, hit rate (settled on the table's best LR)
and mean regret ((loss - best) / best). The goal: at most 1.3 trials per cell at mean regret <= 1%.

This measures the idea with the searcher's own rule; the `search.warm_start` config key that would
feed a live sweep is not built. Measured (benchmarks/analysis/warm_start_replay.txt): the goal is
not met. A log-linear trend fitted on budgets 0.25-1 keeps falling when extrapolated to 4 epochs,
where the recorded optimum has levelled off at 0.2-0.4, so the 4-epoch cells start (and, with one
trial, stay) at 0.1 or 0.05.

Run:
    PYTHONPATH=. .venv/bin/python benchmarks/warm_start_replay.py benchmarks/fashion_grid_agc0.16.csv \
        benchmarks/mnist5k_grid_agc0.16.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from raysweep.analysis.lr_trend import fit_lr_trend
from raysweep.analysis.runs import load_csv
from raysweep.search._prior import Bound, Prediction, PriorRule, Propose, Settle, pick_best

START_LR = 1.6  # `raysweep bench searcher`'s default first-cell start


def _means(runs, lrs):  # type: ignore[no-untyped-def]
    """(model, epochs) -> {grid index: mean loss over seeds (inf if any seed diverged)}."""
    out: dict[tuple[str, float], dict[int, float]] = {}
    for (model, epochs, lr), rs in runs.groups().items():
        losses = [r.val_loss for r in rs]
        out.setdefault((model, epochs), {})[lrs.index(lr)] = (sum(losses) / len(losses)
                                                            if all(map(math.isfinite, losses)) else math.inf)
    return out


def _vertex(table: dict[int, float], i: int, lrs: list[float]) -> float:
    """The optimum between grid points: the vertex of a parabola in log LR through the best grid LR
    and its two neighbours (mean losses); the grid LR itself when a neighbour is missing or the
    parabola does not open upward."""
    lo, mid, hi = table.get(i - 1, math.inf), table[i], table.get(i + 1, math.inf)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo + hi - 2 * mid <= 0:
        return lrs[i]
    return lrs[i] * (lrs[1] / lrs[0]) ** (0.5 * (lo - hi) / (lo + hi - 2 * mid))


def _settle(rule: PriorRule, bound: Bound | None, table: dict[int, float],
            prediction: Prediction | None = None) -> tuple[int, int]:
    """Replay one cell to its settled grid index; (index, trials)."""
    tried: dict[int, float] = {}
    while True:
        step = rule.step(bound, tried, set(), prediction)
        if isinstance(step, Settle):
            return step.index, len(tried)
        assert isinstance(step, Propose), step  # nothing runs concurrently here: no WAIT
        tried[step.index] = table.get(step.index, math.inf)


def replay(path: str, estimate: str = "grid") -> dict[str, object]:
    runs = load_csv(path)
    lrs = list(runs.lrs)
    models, epochs = runs.models, runs.epochs
    means = _means(runs, lrs)
    best = {k: pick_best(v) for k, v in means.items()}
    m_cut, e_cut = (len(models) + 1) // 2 - 1, (len(epochs) + 1) // 2 - 1  # the earlier study: lower half
    earlier = [c for c in runs.cells() if models.index(c.model) <= m_cut and epochs.index(c.epochs) <= e_cut]
    if estimate == "vertex":
        earlier = [dataclasses.replace(c, best_lr=_vertex(means[(c.model, c.epochs)], lrs.index(c.best_lr), lrs))
                   for c in earlier]
    trend = fit_lr_trend(earlier)
    replayed = [(m, e) for m in models for e in epochs
                if models.index(m) > m_cut or epochs.index(e) > e_cut]

    start = min(range(len(lrs)), key=lambda i: (abs(math.log(lrs[i] / START_LR)), -lrs[i]))
    mono_rule = PriorRule(tuple(lrs), start, "monotone")
    settled: dict[tuple[int, int], int] = {}
    mono: dict[tuple[str, float], tuple[int, int]] = {}
    for i, m in enumerate(models):
        for j, e in enumerate(epochs):
            preds = [(p, settled[p]) for p in ((i - 1, j), (i, j - 1)) if p in settled]
            bound = None
            if preds:
                (pi, pj), idx = min(preds, key=lambda t: t[1])
                bound = Bound(idx, f"{models[pi]}@{epochs[pj]:g}")
            idx, n = _settle(mono_rule, bound, means[(m, e)])
            settled[(i, j)] = idx
            mono[(m, e)] = (idx, n)

    warm_rule = PriorRule(tuple(lrs), start, "trend")
    step = math.log(lrs[1] / lrs[0])
    warm: dict[tuple[str, float], tuple[int, int]] = {}
    for m, e in replayed:
        x = math.log(trend.predict(runs.rung_params[m], e) / lrs[0]) / step  # fractional grid index
        b = min(len(lrs) - 1, max(0, round(x)))
        prediction = Prediction(x, f"earlier study's trend ({x:.2f})", trusted=True)
        warm[(m, e)] = _settle(warm_rule, Bound(b, "warm start"), means[(m, e)], prediction)

    def score(res: dict[tuple[str, float], tuple[int, int]]) -> dict[str, float]:
        cells = replayed
        regrets = [(means[c][res[c][0]] - means[c][best[c]]) / means[c][best[c]] for c in cells]
        return {"trials_per_cell": sum(res[c][1] for c in cells) / len(cells),
                "hit_rate": sum(res[c][0] == best[c] for c in cells) / len(cells),
                "mean_regret": sum(regrets) / len(regrets), "max_regret": max(regrets)}

    whole = {"trials_per_cell": sum(n for _, n in mono.values()) / len(mono),
             "hit_rate": sum(mono[k][0] == best[k] for k in mono) / len(mono)}
    return {"table": path, "earlier": [c.name for c in earlier], "replayed": len(replayed),
            "trend": (trend.c, trend.p, trend.q), "monotone": score(mono), "warm": score(warm),
            "monotone_whole_lattice": whole,
            "cells": [(f"{m}@{e:g}", lrs[best[(m, e)]], lrs[mono[(m, e)][0]], mono[(m, e)][1], lrs[warm[(m, e)][0]],
                       warm[(m, e)][1]) for m, e in replayed]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--cells", action="store_true", help="also print every replayed cell")
    ap.add_argument("--estimate", choices=("grid", "vertex"), default="grid",
                    help="the earlier cells' optimum the trend is fitted to: the best grid LR, or the vertex of "
                         "a parabola through it and its neighbours (needs three LRs per cell; default %(default)s)")
    args = ap.parse_args(argv)
    for path in args.tables:
        r = replay(path, args.estimate)
        _, p, q = r["trend"]
        print(f"[{args.estimate}] {path}: earlier study = {len(r['earlier'])} cells ({', '.join(r['earlier'])}); "
              f"trend lr ~ N^{p:.3f} epochs^{q:.3f}; {r['replayed']} cells replayed "
              f"(plain monotone over the whole lattice: {r['monotone_whole_lattice']['trials_per_cell']:.2f} "
              f"trials/cell, hit {r['monotone_whole_lattice']['hit_rate']:.3f})")
        print(f"  {'searcher':<14} {'trials/cell':>11} {'hit rate':>8} {'mean regret':>11} {'max regret':>10}")
        for name in ("monotone", "warm"):
            s = r[name]
            print(f"  {name + (' start' if name == 'warm' else ''):<14} {s['trials_per_cell']:>11.2f} "
                  f"{s['hit_rate']:>8.3f} {s['mean_regret']:>11.2%} {s['max_regret']:>10.2%}")
        if args.cells:
            print(f"  {'cell':<16} {'best':>6} {'monotone':>9} {'trials':>6} {'warm':>6} {'trials':>6}")
            for cell, b, mo, mn, wa, wn in r["cells"]:
                print(f"  {cell:<16} {b:>6g} {mo:>9g} {mn:>6} {wa:>6g} {wn:>6}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
