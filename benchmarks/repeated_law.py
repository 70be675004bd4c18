"""Which law for repeated data? The four forms of `raysweep.analysis.repeated`, compared by held-out
error on the committed full-Fashion study (not by in-sample fit).

For each table and each form:
- in-sample: RMSE of log loss over all cells (for reference only);
- leave-one-out: each cell in turn left out, the form refitted on the rest (from the full fit's end
  point and the best grid starts), the left-out cell predicted; mean and max |relative error|;
- compute split: fit on the cells whose compute lies in the lower two thirds of the log compute range
  (the cut of benchmarks/validate_forecast.py), predict every cell above it; mean and max |error|;
- epoch split: fit on every budget but the last, predict the last (where the study turns over);
- the turnover: the cells whose loss is higher than the same rung's at the previous budget, predicted
  by leave-one-out, and whether the fitted law (on all cells) turns over before the lattice's last
  budget for each rung.

Run (about 45 minutes on 2 shared cores):
    PYTHONPATH=. .venv/bin/python benchmarks/repeated_law.py benchmarks/study/nfnet.csv \
        benchmarks/study/vit.csv --json benchmarks/study/repeated_law.json > benchmarks/study/repeated_law.txt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from raysweep.analysis.law_choice import compute_cut
from raysweep.analysis.repeated import FORMS, fit_repeated
from raysweep.analysis.runs import ComputeAxis, load_csv

HELD_OUT_STARTS = 3  # grid starts of a held-out refit, besides the full fit's end point
FASHION_TRAIN = 54_000  # U: the study's training split (6,000 of 60,000 held out); only rescales B in examples


def compare(path: str) -> dict[str, object]:
    cells = load_csv(path).cells(ComputeAxis.FLOPS)
    cut = compute_cut([c.compute for c in cells])
    past = [c for c in cells if c.compute <= cut]
    future = [c for c in cells if c.compute > cut]
    by = {(c.model, c.epochs): c for c in cells}
    epochs = sorted({c.epochs for c in cells})
    turns = [c for c in cells if c.epochs != epochs[0]
             and c.loss > by.get((c.model, epochs[epochs.index(c.epochs) - 1]), c).loss]
    out: dict[str, object] = {"table": path, "cells": len(cells), "cut_flops": cut, "fit_cells": len(past),
                              "turnover_cells": [c.name for c in turns], "forms": {}}
    for form in FORMS:
        t0 = time.time()
        full = fit_repeated(cells, form, unique=FASHION_TRAIN)
        loo = []
        for i, c in enumerate(cells):
            rest = cells[:i] + cells[i + 1:]
            f = fit_repeated(rest, form, starts=HELD_OUT_STARTS, init=full)
            loo.append(f.predict(c.params, c.epochs) / c.loss - 1)
        split = fit_repeated(past, form, starts=HELD_OUT_STARTS, init=None)
        split_err = [split.predict(c.params, c.epochs) / c.loss - 1 for c in future]
        short = fit_repeated([c for c in cells if c.epochs < epochs[-1]], form, starts=HELD_OUT_STARTS, init=None)
        last_err = [short.predict(c.params, c.epochs) / c.loss - 1 for c in cells if c.epochs == epochs[-1]]
        turn_err = [loo[cells.index(c)] for c in turns]
        last = epochs[-1]
        turns_before_end = {m: full.best_epochs(p) < last for m, p in sorted({(c.model, c.params) for c in cells})}
        out["forms"][form] = {  # type: ignore[index]
            "status": str(full.status), "params": full.params() if full.theta else {}, "at_bounds": list(full.at_bounds),
            "rmse_log": full.rmse_log, "loo_mean": float(np.mean(np.abs(loo))), "loo_max": float(np.max(np.abs(loo))),
            "split_status": str(split.status),
            "split_mean": float(np.mean(np.abs(split_err))) if split_err else None,
            "split_max": float(np.max(np.abs(split_err))) if split_err else None,
            "turnover_loo": [float(x) for x in turn_err],
            "last_budget_errors": [float(x) for x in last_err],
            "last_budget_mean": float(np.mean(np.abs(last_err))),
            "turns_over_before": turns_before_end,
            "best_epochs": {c.model: full.best_epochs(c.params) for c in cells},
            "seconds": time.time() - t0,
        }
        print(f"  {path} {form}: {time.time() - t0:.0f} s", file=sys.stderr)
    return out


def format_result(res: dict[str, object]) -> str:
    forms: dict[str, dict[str, object]] = res["forms"]  # type: ignore[assignment]
    turns = ", ".join(res["turnover_cells"]) or "none"  # type: ignore[arg-type]
    predicted = res["cells"] - res["fit_cells"]  # type: ignore[operator]
    lines = [(f"{res['table']}: {res['cells']} cells; compute split at {res['cut_flops']:.3g} FLOPs "
              f"({res['fit_cells']} cells fit, {predicted} predicted); "
              f"cells worse than the same rung's previous budget: {turns}"),
             (f"{'form':<26} {'status':>10} {'in-sample':>9} {'LOO mean':>9} {'LOO max':>8} {'split mean':>10} "
              f"{'split max':>9} {'last budget':>11} {'turnover LOO':>14}  law turns over before the last budget")]
    for form, r in forms.items():
        turn = " ".join(f"{x:+.1%}" for x in r["turnover_loo"]) or "-"  # type: ignore[union-attr]
        over = ", ".join(f"{m}@{r['best_epochs'][m]:.3g}" for m, v in r["turns_over_before"].items()  # type: ignore[union-attr,index]
                         if v) or "none"
        lines.append(f"{form:<26} {r['status']:>10} {r['rmse_log']:>9.4f} {r['loo_mean']:>9.2%} {r['loo_max']:>8.2%} "
                     f"{_pct(r['split_mean']):>10} {_pct(r['split_max']):>9} {_pct(r['last_budget_mean']):>11} {turn:>14}  {over}")
    for form, r in forms.items():
        params = ", ".join(f"{k} {v:.3g}" for k, v in r["params"].items())  # type: ignore[union-attr]
        bounds = f" (at the search box's edge: {', '.join(r['at_bounds'])})" if r["at_bounds"] else ""  # type: ignore[arg-type]
        lines.append(f"  {form}: {params}{bounds}")
    return "\n".join(lines)


def _pct(x: object) -> str:
    return f"{x:.2%}" if isinstance(x, float) else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = [compare(t) for t in args.tables]
    for res in results:
        print(format_result(res))
        print()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
