"""Side by side: the newest sweep of each MLflow experiment named, per (model, budget) cell: the best
LR and its validation loss, and the FLOPs the cell spent in full-trial equivalents. Written for
benchmarks/live_asha.sh (grid + Tune's ASHA against monotone + search.early_stop), usable on any
sweeps of one lattice.

Read from MLflow, not from `raysweep table`: the table exports finished trials only, and a stopped
trial's FLOPs up to its stop are part of what the method spent. A cell's full trial is the FLOPs of
its whole budget (an ok trial's FLOPs; without one, a trial's FLOPs per step so far x its total
steps: every LR of a cell costs the same per step); a trial's cost is the FLOPs it reported, ok, diverged, stopped or failed.

    python benchmarks/live_compare.py --tracking-uri sqlite:///benchmarks/live/mlflow.db \
        --experiment live-asha --experiment live-monotone-es
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag
from raysweep.tracking import read_metric


@dataclass
class Cell:
    trials: int = 0
    stopped: int = 0
    spent: float = 0.0  # FLOPs
    full: float = math.nan  # FLOPs of one whole trial of the cell
    best_lr: float = math.nan
    best_loss: float = math.inf

    @property
    def full_trials(self) -> float:
        return self.spent / self.full if self.full > 0 else math.nan


def newest_sweep(client: MlflowClient, experiment: str) -> tuple[str, Any]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"live_compare: no MLflow experiment {experiment!r}")
    sweeps = client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    if not sweeps:
        raise SystemExit(f"live_compare: no sweep in experiment {experiment!r}")
    return exp.experiment_id, sweeps[0]


def cells_of(client: MlflowClient, experiment: str) -> tuple[dict[str, Cell], Any]:
    exp_id, parent = newest_sweep(client, experiment)
    runs = client.search_runs([exp_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'", max_results=5000)
    cells: dict[str, Cell] = defaultdict(Cell)
    for run in runs:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        if tags.get(Tag.PARENT) != parent.info.run_id:
            continue
        cell = cells[tags[Tag.CELL]]
        cell.trials += 1
        cell.stopped += tags.get(Tag.STATUS) == "stopped"
        flops = float(metrics.get(M.FLOPS, 0.0))
        cell.spent += flops
        if tags.get(Tag.STATUS) == "ok":  # it ran the whole budget
            cell.full = flops
        elif flops > 0 and not cell.full > 0 and params.get(M.TOTAL_STEPS):  # its FLOPs per step so far x the budget
            step = max(m.step for m in client.get_metric_history(run.info.run_id, M.FLOPS))
            cell.full = flops * float(params[M.TOTAL_STEPS]) / step if step > 0 else math.nan
        if tags.get(Tag.BEST_IN_CELL) == "true":
            cell.best_lr = float(params["lr"])
            cell.best_loss = read_metric(metrics.get(M.VAL_LOSS, math.inf))
    return dict(cells), parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--experiment", action="append", required=True, help="repeat: one column group each")
    args = ap.parse_args(argv)
    client = MlflowClient(args.tracking_uri)
    sweeps = {e: cells_of(client, e) for e in args.experiment}
    names = sorted({c for cells, _ in sweeps.values() for c in cells},
                   key=lambda c: (c.split("@")[0], float(c.split("@")[1])))
    head = f"{'cell':<14}" + "".join(f" | {e[:28]:<28} {'':>8} {'':>6}" for e in sweeps)
    sub = f"{'':<14}" + "".join(f" | {'best lr':>8} {'loss':>9} {'trials':>9} {'full':>6}" for _ in sweeps)
    print(head)
    print(sub)
    totals = {e: [0.0, 0, 0, []] for e in sweeps}
    for name in names:
        line = f"{name:<14}"
        losses = [sweeps[e][0][name].best_loss for e in sweeps if name in sweeps[e][0]]
        best = min(losses) if losses else math.inf
        for e, (cells, _) in sweeps.items():
            c = cells.get(name)
            if c is None:
                line += f" | {'-':>8} {'-':>9} {'-':>9} {'-':>6}"
                continue
            tot = totals[e]
            tot[0] += c.full_trials if math.isfinite(c.full_trials) else 0.0
            tot[1] += c.trials
            tot[2] += c.stopped
            if math.isfinite(c.best_loss) and math.isfinite(best) and best > 0:
                tot[3].append(100 * (c.best_loss - best) / best)
            trials = f"{c.trials}({c.stopped}s)"
            line += f" | {c.best_lr:>8g} {c.best_loss:>9.4f} {trials:>9} {c.full_trials:>6.2f}"
        print(line)
    print()
    for e, (cells, parent) in sweeps.items():
        full, trials, stopped, regrets = totals[e]
        n = len(cells)
        wall = parent.data.metrics.get(M.SWEEP_WALL_S, math.nan)
        mean_regret = sum(regrets) / len(regrets) if regrets else math.nan
        print(f"{e}: {n} cells, {trials} trials ({stopped} stopped early), {full:.2f} full trials of FLOPs "
              f"({full / n if n else math.nan:.2f} per cell), {parent.data.metrics.get(M.SWEEP_TOTAL_FLOPS, math.nan):.3g} "
              f"FLOPs, saved {parent.data.metrics.get(M.SWEEP_SAVED_FLOPS, 0.0):.3g}, wall {wall:.0f} s; "
              f"best loss {mean_regret:.2f}% above the better of the sweeps on average (max "
              f"{max(regrets) if regrets else math.nan:.2f}%)")
    print("trials: run in the cell (s: stopped early); full: the FLOPs it spent in whole trials of the cell; "
          "loss: the best run's validation loss (the settled LR's)")


if __name__ == "__main__":
    main()
