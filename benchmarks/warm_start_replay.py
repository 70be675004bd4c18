"""Warm start (`search.warm_start`), measured by replay: a second sweep whose cells take their first
LR from an earlier study's fitted trend, against plain monotone, on the recorded full-grid tables.

The earlier study is the table's smaller rungs and shorter budgets (the lower ~half of each axis),
so every replayed cell lies outside the sizes and budgets the trend saw: the warm start's hard case.
Every replayed cell is run twice, with the losses looked up in the table (mean over seeds):

- plain monotone: the searcher's rule (`raysweep.search.PriorRule`) over the whole lattice in
  order, each cell bounded by its settled predecessors (the first cell starts at 1.6, as
  `raysweep bench searcher` does);
- warm start: the searcher's own code (`raysweep.analysis.warm_start.fit_warm_start`,
  `raysweep.core.warm.WarmStart`, `PriorRule.warm_opening`), each cell on its own.

Variants (the searcher's choices first):
- --earlier grid|monotone: the earlier study ran every LR of the table in its cells, or only the LRs
  a monotone sweep over them tries (what a real earlier raysweep sweep holds);
- --estimate grid|vertex: the trend is fitted to the best grid LRs, or to the vertex of a parabola
  through the best LR and its neighbours where both were tried;
- --extrapolate step|hold|line: outside the earlier study's box, hold the forecast at the box's edge
  and add one step toward the extrapolated line where it rounds elsewhere; only hold it; or follow
  the fitted line.

Scores, over the replayed cells only: trials per cell, hit rate (settled on the table's best LR)
and mean regret ((loss - best) / best). The issue's goal: at most 1.3 trials per cell at mean regret
<= 1%. `--matrix` prints every variant on every table (benchmarks/analysis/warm_start_replay.txt).

Run:
    PYTHONPATH=. .venv/bin/python benchmarks/warm_start_replay.py --matrix benchmarks/fashion_grid_agc0.16.csv \
        benchmarks/mnist5k_grid_agc0.16.csv
"""

from __future__ import annotations

import argparse
import math
import sys

from raysweep.analysis.runs import Runs, load_csv
from raysweep.analysis.warm_start import fit_warm_start
from raysweep.core.warm import WarmStart
from raysweep.search import Bound, Prediction, PriorRule, Propose, Settle, pick_best

START_LR = 1.6  # `raysweep bench searcher`'s default first-cell start


def _means(runs, lrs):  # type: ignore[no-untyped-def]
    """(model, epochs) -> {grid index: mean loss over seeds (inf if any seed diverged)}."""
    out: dict[tuple[str, float], dict[int, float]] = {}
    for (model, epochs, lr), rs in runs.groups().items():
        losses = [r.val_loss for r in rs]
        out.setdefault((model, epochs), {})[lrs.index(lr)] = (sum(losses) / len(losses)
                                                            if all(map(math.isfinite, losses)) else math.inf)
    return out


def _settle(rule: PriorRule, bound: Bound | None, table: dict[int, float],
            prediction: Prediction | None = None, tried: dict[int, float] | None = None) -> tuple[int, int]:
    """Replay one cell to its settled grid index; (index, trials). `tried` collects the trials."""
    tried = {} if tried is None else tried
    while True:
        step = rule.step(bound, tried, set(), prediction)
        if isinstance(step, Settle):
            return step.index, len(tried)
        assert isinstance(step, Propose), step  # nothing runs concurrently here: no WAIT
        tried[step.index] = table.get(step.index, math.inf)


def _monotone(rule: PriorRule, models: tuple[str, ...], epochs: tuple[float, ...],
              means: dict[tuple[str, float], dict[int, float]]
              ) -> dict[tuple[str, float], tuple[int, int, dict[int, float]]]:
    """Plain monotone over a lattice in order: cell -> (settled index, trials, the tried indices' losses)."""
    settled: dict[tuple[int, int], int] = {}
    out = {}
    for i, m in enumerate(models):
        for j, e in enumerate(epochs):
            preds = [(p, settled[p]) for p in ((i - 1, j), (i, j - 1)) if p in settled]
            bound = None
            if preds:
                (pi, pj), idx = min(preds, key=lambda t: t[1])
                bound = Bound(idx, f"{models[pi]}@{epochs[pj]:g}")
            tried: dict[int, float] = {}
            idx, n = _settle(rule, bound, means[(m, e)], tried=tried)
            settled[(i, j)] = idx
            out[(m, e)] = (idx, n, tried)
    return out


def replay(path: str, estimate: str = "grid", extrapolate: str = "step",
           earlier_by: str = "grid") -> dict[str, object]:
    runs = load_csv(path)
    lrs = list(runs.lrs)
    models, epochs = runs.models, runs.epochs
    means = _means(runs, lrs)
    best = {k: pick_best(v) for k, v in means.items()}
    m_cut, e_cut = (len(models) + 1) // 2 - 1, (len(epochs) + 1) // 2 - 1  # the earlier study: lower half
    start = min(range(len(lrs)), key=lambda i: (abs(math.log(lrs[i] / START_LR)), -lrs[i]))
    mono_rule = PriorRule(tuple(lrs), start, "monotone")
    early = {(m, e) for m in models[:m_cut + 1] for e in epochs[:e_cut + 1]}
    keep = {(m, e, lr) for (m, e, lr) in runs.groups() if (m, e) in early}
    if earlier_by == "monotone":  # the earlier study was itself a monotone sweep: only its tried LRs
        sweep = _monotone(mono_rule, models[:m_cut + 1], epochs[:e_cut + 1], means)
        keep = {(m, e, lrs[i]) for (m, e), (_, _, tried) in sweep.items() for i in tried}
    sub = Runs(runs.name, tuple(r for r in runs.runs if (r.model, r.epochs, r.lr) in keep), runs.source)
    earlier = sub.cells()
    fitted = fit_warm_start(sub, path, refine=estimate == "vertex")  # the searcher's own fit: grid
    trend = (fitted.c, fitted.p, fitted.q)
    replayed = [(m, e) for m in models for e in epochs
                if models.index(m) > m_cut or epochs.index(e) > e_cut]
    mono = {k: (idx, n) for k, (idx, n, _) in _monotone(mono_rule, models, epochs, means).items()}

    # the searcher's own warm start (raysweep.core.warm): its forecast and its opening rule
    n_of = runs.rung_params
    box = ((min(n_of[c.model] for c in earlier), max(n_of[c.model] for c in earlier)),
           (min(c.epochs for c in earlier), max(c.epochs for c in earlier)))
    if extrapolate == "line":  # the fitted line everywhere (the first measurement)
        box = ((1e-12, 1e300), (1e-12, 1e300))
    warm_start = WarmStart(path, *trend, box[0], box[1], len(earlier))
    plan = warm_start.plan({f"{m}@{e:g}": (n_of[m], e) for m, e in replayed})
    warm_rule = PriorRule(tuple(lrs), start, "monotone")
    warm: dict[tuple[str, float], tuple[int, int]] = {}
    for m, e in replayed:
        x = plan.index(f"{m}@{e:g}", tuple(lrs))
        prediction = Prediction(x, f"earlier study's trend ({x:.2f})", warm=True,
                                toward=plan.line_index(f"{m}@{e:g}", tuple(lrs)) if extrapolate == "step" else None)
        warm[(m, e)] = _settle(warm_rule, Bound(min(len(lrs) - 1, max(0, round(x))), "warm start"),
                               means[(m, e)], prediction)

    def score(res: dict[tuple[str, float], tuple[int, int]]) -> dict[str, float]:
        cells = replayed
        regrets = [(means[c][res[c][0]] - means[c][best[c]]) / means[c][best[c]] for c in cells]
        return {"trials_per_cell": sum(res[c][1] for c in cells) / len(cells),
                "hit_rate": sum(res[c][0] == best[c] for c in cells) / len(cells),
                "mean_regret": sum(regrets) / len(regrets), "max_regret": max(regrets)}

    whole = {"trials_per_cell": sum(n for _, n in mono.values()) / len(mono),
             "hit_rate": sum(mono[k][0] == best[k] for k in mono) / len(mono)}
    return {"table": path, "earlier": [c.name for c in earlier], "replayed": len(replayed),
            "trend": trend, "monotone": score(mono), "warm": score(warm),
            "monotone_whole_lattice": whole,
            "cells": [(f"{m}@{e:g}", lrs[best[(m, e)]], lrs[mono[(m, e)][0]], mono[(m, e)][1], lrs[warm[(m, e)][0]],
                       warm[(m, e)][1]) for m, e in replayed]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--cells", action="store_true", help="also print every replayed cell")
    ap.add_argument("--estimate", choices=("grid", "vertex"), default="grid",
                    help="the earlier cells' optimum the trend is fitted to: the best grid LR (the searcher's fit), "
                         "or the vertex of a parabola through it and its neighbours where both were tried "
                         "(default %(default)s)")
    ap.add_argument("--extrapolate", choices=("step", "hold", "line"), default="step",
                    help="outside the earlier study's sizes and budgets: hold the trend at the box's edge and also "
                         "try one step toward the fitted line where it points elsewhere (the searcher's rule), only "
                         "hold it, or follow the line (default %(default)s)")
    ap.add_argument("--earlier", choices=("grid", "monotone"), default="grid",
                    help="what the earlier study ran in its cells: every LR of the table, or only the LRs a "
                         "monotone sweep over them tries (about 2 per cell; default %(default)s)")
    ap.add_argument("--matrix", action="store_true", help="one row per variant and table, then stop")
    args = ap.parse_args(argv)
    if args.matrix:
        return _matrix(args.tables)
    for path in args.tables:
        r = replay(path, args.estimate, args.extrapolate, args.earlier)
        _, p, q = r["trend"]
        print(f"[earlier {args.earlier}, {args.estimate}, {args.extrapolate}] {path}: earlier study = {len(r['earlier'])} cells ({', '.join(r['earlier'])}); "
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


def _matrix(tables: list[str]) -> int:
    head = (f"{'earlier':<9} {'estimate':<8} {'extrapolate':<11} {'table':<28} {'trials/cell':>11} {'hit':>6} "
            f"{'regret':>7} {'max':>7}   {'monotone: trials':>16} {'regret':>7}")
    print(head)
    print("-" * len(head))
    for earlier in ("monotone", "grid"):
        for estimate in ("grid", "vertex"):
            for extrapolate in ("step", "hold", "line"):
                for path in tables:
                    r = replay(path, estimate, extrapolate, earlier)
                    w, m = r["warm"], r["monotone"]
                    ok = "  goal met" if w["trials_per_cell"] <= 1.3 and w["mean_regret"] <= 0.01 else ""
                    print(f"{earlier:<9} {estimate:<8} {extrapolate:<11} {path.split('/')[-1]:<28} "
                          f"{w['trials_per_cell']:>11.2f} {w['hit_rate']:>6.3f} {w['mean_regret']:>7.2%} "
                          f"{w['max_regret']:>7.2%}   {m['trials_per_cell']:>16.2f} {m['mean_regret']:>7.2%}{ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
