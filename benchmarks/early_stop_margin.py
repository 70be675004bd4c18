"""search.early_stop's margin, from the recorded curves: the seed noise of a matched-step comparison,
and what each margin buys in the replay (FLOPs per cell against regret).

1. Noise. A live stop decision compares two trials of one cell at the same step; they share the
   seed (one init, one data order). For every cell, every neighbour of its best LR (one grid step
   either side, both finite) and every evaluation point the two share, the per-seed relative gap
   (loss(neighbour) - loss(best)) / loss(best) has a seed-to-seed standard deviation sigma. The
   median sigma, early (fraction <= 1/3), middle and late (>= 2/3) in the budget and overall, is
   the noise; 1.645 sigma is the one-sided 95% point, the margin below which a trial no worse than
   the incumbent would be stopped more than 5% of the time.
2. The sweep. `raysweep bench searcher`'s replay of monotone + early stop (and warm + early stop
   with --warm-start) at each margin: full trials per cell, hit rate, mean and max regret.
3. The floor. The same replay on an *oracle* copy of the table, in which every evaluation point of a
   trial holds that trial's final loss, at margin 0: every trial that will end worse than its cell's
   incumbent stops at its first evaluation point shared with the incumbent, and no trial that will
   end better is ever stopped. No margin and no noise model can spend less under search.early_stop's
   rules (the cell's first trial and every trial better than the ones before it run their whole
   budget), so this row is the least FLOPs per cell the rule can reach at the searcher's own regret.

    PYTHONPATH=. .venv/bin/python benchmarks/early_stop_margin.py benchmarks/mnist5k_grid_curves.csv \
        benchmarks/fashion_grid_curves.csv --figure benchmarks/early_stop_margin.png \
        --json benchmarks/early_stop_margin.json
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import math
import statistics
import sys
from pathlib import Path

from raysweep.bench.engine import run_replay
from raysweep.bench.table import Table, load_table
from raysweep.search.early_stop import AUTO_MARGIN, ONE_SIDED_95

MARGINS = tuple(sorted({0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.29, 0.5, AUTO_MARGIN}))
PHASES = (("early", 0.0, 1 / 3), ("middle", 1 / 3, 2 / 3), ("late", 2 / 3, 1.0 + 1e-9))


def _seed_curve(row) -> dict[float, float]:  # type: ignore[no-untyped-def]
    return {round(f, 6): v for f, v in row.curve} | {1.0: row.val_loss}


def noise(table: Table) -> dict[str, object]:
    """The seed-to-seed sd of the paired relative gap, best LR against its neighbours, per point."""
    lat = table.lattice
    sigmas: list[tuple[float, float]] = []  # (fraction, sigma)
    for cell in lat.cells():
        best = table.best(cell, 0.0)
        if best is None:
            continue
        for nb in (best - 1, best + 1):
            if not 0 <= nb < len(lat.lrs) or (cell, nb) not in table.runs:
                continue
            a = {r.seed: _seed_curve(r) for r in table.runs[(cell, best)]}
            b = {r.seed: _seed_curve(r) for r in table.runs[(cell, nb)]}
            seeds = sorted(set(a) & set(b))
            if len(seeds) < 2:
                continue
            fracs = set.intersection(*(set(a[s]) & set(b[s]) for s in seeds))
            for f in sorted(fracs):
                gaps = [(b[s][f] - a[s][f]) / abs(a[s][f]) for s in seeds]
                if all(math.isfinite(g) for g in gaps):
                    sigmas.append((f, statistics.stdev(gaps)))
    out: dict[str, object] = {"pairs_points": len(sigmas)}
    for name, lo, hi in PHASES:
        vals = [s for f, s in sigmas if lo <= f < hi]
        out[name] = statistics.median(vals) if vals else None
    out["all"] = statistics.median([s for _, s in sigmas]) if sigmas else None
    out["margin_95"] = ONE_SIDED_95 * out["all"] if out["all"] is not None else None  # type: ignore[operator]
    return out


def sweep(path: str, warm: str | None, margins: tuple[float, ...]) -> list[dict[str, object]]:
    rows = []
    names = ["monotone+es"] + (["warm+es"] if warm else [])
    base = run_replay(path, searchers=["monotone"] + (["warm"] if warm else []), warm_start=warm)["searchers"]
    for name, plain in (("monotone", "monotone"), ("warm", "warm")):
        if plain in base:
            e = base[plain]
            rows.append({"variant": name, "margin": None, "flops_per_cell": e["full_trials_per_cell"],
                         "hit_rate": e["hit_rate"], "mean_regret": e["mean_regret"], "max_regret": e["max_regret"]})
    for m in margins:
        res = run_replay(path, searchers=names, early_stop=m, warm_start=warm)["searchers"]
        for name in names:
            e = res[name]
            rows.append({"variant": name, "margin": m, "flops_per_cell": e["full_trials_per_cell"],
                         "hit_rate": e["hit_rate"], "mean_regret": e["mean_regret"], "max_regret": e["max_regret"],
                         "stopped_per_cell": e["stopped_per_cell"]})
    return rows


def oracle_copy(path: str, out: Path) -> Path:
    """The table with each trial's curve flattened to its final loss at every evaluation point."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    if "curve" not in fields:
        raise SystemExit(f"{path}: no `curve` column: the oracle floor needs a table with curves")
    for row in rows:
        if row["curve"]:
            fracs = [p.split(":")[0] for p in row["curve"].split(";")]
            row["curve"] = ";".join(f"{fr}:{row['val_loss']}" for fr in fracs)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return out


def floor(path: str, warm: str | None) -> list[dict[str, object]]:
    names = ["monotone+es"] + (["warm+es"] if warm else [])
    with tempfile.TemporaryDirectory() as tmp:
        oracle = oracle_copy(path, Path(tmp) / "oracle.csv")
        res = run_replay(str(oracle), searchers=names, early_stop=0.0, warm_start=warm)["searchers"]
    return [{"variant": f"{name} oracle", "margin": 0.0, "flops_per_cell": res[name]["full_trials_per_cell"],
             "hit_rate": res[name]["hit_rate"], "mean_regret": res[name]["mean_regret"],
             "max_regret": res[name]["max_regret"], "stopped_per_cell": res[name]["stopped_per_cell"]}
            for name in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--warm-start", nargs="*", default=None,
                    help="an earlier table per table (same order), for the warm+es rows")
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    warms = args.warm_start or [None] * len(args.tables)
    if len(warms) != len(args.tables):
        ap.error("--warm-start takes one earlier table per table")
    results = []
    for path, warm in zip(args.tables, warms, strict=True):
        table = load_table(path)
        n = noise(table)
        print(f"{path}: paired seed noise of the relative gap, best LR against its neighbours "
              f"({n['pairs_points']} (pair, point)s): median sigma early {_f(n['early'])}, middle "
              f"{_f(n['middle'])}, late {_f(n['late'])}, all {_f(n['all'])} -> 1.645 sigma = {_f(n['margin_95'])} "
              f"(search.early_stop's auto: {AUTO_MARGIN})")
        rows = sweep(path, warm, MARGINS)
        oracle = floor(path, warm)
        print(f"{'variant':<12} {'margin':>7} {'flops/cell':>10} {'stopped/cell':>12} {'hit':>6} "
              f"{'mean regret':>11} {'max regret':>10}")
        for r in rows:
            margin = "-" if r["margin"] is None else f"{r['margin']:g}"
            stopped = f"{r['stopped_per_cell']:.2f}" if "stopped_per_cell" in r else "-"
            print(f"{r['variant']:<12} {margin:>7} {r['flops_per_cell']:>10.2f} {stopped:>12} "
                  f"{r['hit_rate']:>6.3f} {r['mean_regret']:>11.2%} {r['max_regret']:>10.2%}")
        for r in oracle:
            print(f"{r['variant']:<19} {r['flops_per_cell']:>10.2f} {r['stopped_per_cell']:>12.2f} "
                  f"{r['hit_rate']:>6.3f} {r['mean_regret']:>11.2%} {r['max_regret']:>10.2%}")
        print("oracle: every trial that ends worse than its incumbent stops at its first shared evaluation "
              "point; no trial that ends better stops: the least FLOPs the rule allows")
        print()
        results.append({"table": path, "warm_start": warm, "noise": n, "sweep": rows, "floor": oracle})
    if args.figure:
        _plot(results, args.figure)
        print(f"wrote {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _f(x: object) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _plot(results: list[dict], path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for variant, colour in (("monotone+es", "C0"), ("warm+es", "C1")):
            pts = [r for r in res["sweep"] if r["variant"] == variant]
            if not pts:
                continue
            xs, ys = [r["flops_per_cell"] for r in pts], [100 * r["mean_regret"] for r in pts]
            ax.plot(xs, ys, "o-", color=colour, label=variant)
            for r, x, y in zip(pts, xs, ys, strict=True):
                ax.annotate(f"{r['margin']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for r in res["sweep"]:
            if r["margin"] is None:
                ax.plot(r["flops_per_cell"], 100 * r["mean_regret"], "s", color="k" if r["variant"] == "monotone" else "C1",
                        mfc="none", label=f"{r['variant']} (no early stop)")
        for r in res.get("floor", []):
            ax.plot(r["flops_per_cell"], 100 * r["mean_regret"], "*", ms=11,
                    color="C0" if r["variant"].startswith("monotone") else "C1", label=r["variant"] + " (floor)")
        ax.axvline(1.5, color="grey", ls=":", lw=1)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel("FLOPs per settled cell (full trials)")
        ax.set_ylabel("mean regret (%)")
        ax.set_title(Path(res["table"]).name, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
