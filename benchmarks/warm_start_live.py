"""A live warm-started sweep scored against a recorded full-grid table: trials per cell, hit rate and
regret of each cell's settled LR (the best LR it tried), with the grid's seed-mean losses as truth.

Recorded (benchmarks/analysis/warm_start_live.txt): the 10k Fashion ladder warm-started from the
full-Fashion NFNet study's table, scored against the 10-seed Fashion grid:
    raysweep run search_spaces/fashion_ladder.yaml --warm-start benchmarks/study/nfnet.csv \\
        --tracking-uri sqlite:////tmp/ws/mlflow.db --results /tmp/ws/res --quiet
    raysweep table --tracking-uri sqlite:////tmp/ws/mlflow.db --experiment raysweep-fashion --out /tmp/ws/live.csv
    PYTHONPATH=. .venv/bin/python benchmarks/warm_start_live.py /tmp/ws/live.csv benchmarks/fashion_grid_agc0.16.csv
"""

from __future__ import annotations

import sys

from raysweep.analysis.runs import load_csv


def main(live_path: str, grid_path: str) -> int:
    live, grid = load_csv(live_path), load_csv(grid_path)
    truth = {k: sum(r.val_loss for r in v) / len(v) for k, v in grid.groups().items()}
    tried = {}
    for (m, e, lr), runs in live.groups().items():
        tried.setdefault((m, e), []).append((min(r.val_loss for r in runs), lr))
    regrets, hits = [], 0
    print(f"{'cell':<16} {'trials':>6} {'settled':>8} {'best':>6} {'regret':>7}")
    for (m, e), got in sorted(tried.items(), key=lambda kv: (live.rung_params[kv[0][0]], kv[0][1])):
        lr = min(got)[1]
        best_loss, best_lr = min((v, -k[2]) for k, v in truth.items() if k[:2] == (m, e))
        regret = (truth[(m, e, lr)] - best_loss) / best_loss
        regrets.append(regret)
        hits += lr == -best_lr
        print(f"{m + '@' + f'{e:g}':<16} {len(got):>6} {lr:>8g} {-best_lr:>6g} {regret:>7.2%}")
    n = len(tried)
    print(f"{n} cells: {sum(len(g) for g in tried.values()) / n:.2f} trials per cell, hit {hits}/{n}, "
          f"mean regret {sum(regrets) / n:.2%}, max {max(regrets):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
