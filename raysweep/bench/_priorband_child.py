"""PriorBand (NePS) over the cells of a results table, run in NePS's own environment.

NePS pins pandas<3 and networkx<3, which raysweep's environment cannot hold, so
`raysweep.bench.priorband` starts this file with the Python of `.venv-neps` (`make neps-env`). It imports
nothing of raysweep: it reads one job as JSON on stdin and writes the result as JSON on stdout.

Job: `{"eta", "budget", "start_lr", "lrs", "runs": [{"seed", "cells": [...]}, ...]}`; a cell is
`{"m", "e", "cost": {i: [c_1..c_K]}, "loss": {i: [l_1..l_K]}}` with the lattice's cells in row-major
order, `i` an LR index the table holds, `c_k` the run's cost from its start to its k-th evaluation
point in full trials of the cell, and `l_k` the loss seen there (null: diverged by then).

Per run and cell, one `neps.algorithms.priorband` (base hyperband, the given eta, NePS's default
prior confidence) through `neps.AskAndTell` over the space {lr: log-uniform float between the grid's
ends with prior at the cell's prior LR, k: integer fidelity 1..K, the evaluation points}. The prior
is the monotone rule's bound: the lowest LR settled in the cell's lattice predecessors
((m-1, e), (m, e-1)), `start_lr` for the first cell. A sampled LR is snapped to the grid (nearest
in log space); a promoted configuration continues its earlier trial (`previous_trial_id`), paying
only the points it adds. The cell stops asking once it has spent `budget` full trials. It settles
on the lowest loss among runs trained to the full budget, else the lowest at the furthest point.

Result: `{"neps": version, "runs": [{"seed", "cells": [{"m", "e", "prior", "settled",
"evals": [[i, k, k0, loss], ...]}]}]}`, one eval per trial in ask order (k0: the point it resumed
from, 0 for a fresh start; loss null for a diverged or missing run).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import warnings
from typing import Any

MAX_ASKS = 500  # per cell: a guard against a cell whose every run the table lacks (they cost nothing)


def _snap(lrs: list[float], lr: float) -> int:
    return min(range(len(lrs)), key=lambda j: (abs(math.log(lrs[j] / lr)), -j))


def _settle(evals: list[list[Any]], fallback: int) -> int:
    done = [e for e in evals if e[3] is not None and math.isfinite(e[3])]
    if not done:
        return fallback
    top = max(e[1] for e in done)
    return min((e for e in done if e[1] == top), key=lambda e: (e[3], -e[0]))[0]


def run_cell(neps: Any, cell: dict[str, Any], lrs: list[float], prior: float, eta: int, budget: float) -> list[list[Any]]:
    from neps.space import HPOFloat, HPOInteger, SearchSpace

    n_points = len(next(iter(cell["cost"].values()))) if cell["cost"] else 1
    space = SearchSpace({
        "lr": HPOFloat(lrs[0], lrs[-1], log=True, prior=prior),
        "k": HPOInteger(1, max(n_points, 2), is_fidelity=True),
    })
    opt = neps.AskAndTell(neps.algorithms.priorband(space, eta=eta))
    spent, reached, evals = 0.0, dict[str, int](), list[list[Any]]()
    while spent < budget - 1e-9 and len(evals) < MAX_ASKS:
        trial = opt.ask()
        i, k = _snap(lrs, float(trial.config["lr"])), min(int(trial.config["k"]), n_points)
        prev = trial.metadata.previous_trial_id
        k0 = min(reached.get(prev, 0), k) if prev else 0
        reached[trial.metadata.id] = k
        cost, loss = cell["cost"].get(str(i)), cell["loss"].get(str(i))
        if cost is None:  # the table lacks the run: it fails as it starts
            opt.tell(trial, RuntimeError("run missing from the table"))
            evals.append([i, k, 0, None])
            continue
        spent += cost[k - 1] - (cost[k0 - 1] if k0 else 0.0)
        seen = loss[k - 1]
        opt.tell(trial, RuntimeError("diverged") if seen is None else float(seen))
        evals.append([i, k, k0, seen])
    return evals


def main() -> int:
    job = json.load(sys.stdin)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from importlib.metadata import version

    import neps
    import numpy as np
    import torch

    lrs = [float(x) for x in job["lrs"]]
    runs = []
    for run in job["runs"]:
        random.seed(run["seed"])
        np.random.seed(run["seed"] % 2**32)
        torch.manual_seed(run["seed"])
        settled: dict[tuple[int, int], int] = {}
        cells = []
        for cell in run["cells"]:
            m, e = cell["m"], cell["e"]
            preds = [settled[p] for p in ((m - 1, e), (m, e - 1)) if p in settled]
            prior = lrs[min(preds)] if preds else float(job["start_lr"])
            evals = run_cell(neps, cell, lrs, prior, int(job["eta"]), float(job["budget"]))
            settled[(m, e)] = _settle(evals, _snap(lrs, prior))
            cells.append({"m": m, "e": e, "prior": prior, "settled": settled[(m, e)], "evals": evals})
        runs.append({"seed": run["seed"], "cells": cells})
    json.dump({"neps": version("neural-pipeline-search"), "runs": runs}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
