"""PriorBand (NePS) as a peer of the replay (issue 16), run in NePS's own environment.

NePS 0.17 pins pandas<3 and networkx<3; raysweep's environment holds pandas 3 (MLflow, Ray Data), so
the two cannot share one. `make neps-env` builds `.venv-neps` beside `.venv`, and this module runs
PriorBand there as a child process (`raysweep/bench/_priorband_child.py`, which imports nothing of
raysweep): the table's curves go in as JSON, the trials PriorBand asked for come back, and the cost
is metered here exactly as for the other peers (`peers._Meter`: a trial stopped at point k of its
budget costs the share of the FLOPs it ran, a promoted one only the points it adds).

The Python that runs NePS: `$RAYSWEEP_NEPS_PYTHON`, else `.venv-neps/bin/python` in the checkout.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from raysweep.bench.peers import _Meter, cell_fracs
from raysweep.bench.table import Table
from raysweep.core.errors import SpecError
from raysweep.core.space import Cell

CHILD = Path(__file__).with_name("_priorband_child.py")
ENV = "RAYSWEEP_NEPS_PYTHON"


class NepsUnavailable(SpecError):
    """NePS's environment is not there: the one-line reason names how to build it."""


def neps_python() -> Path:
    """The Python of NePS's environment: $RAYSWEEP_NEPS_PYTHON, else .venv-neps beside .venv."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(sys.prefix).parent / ".venv-neps" / "bin" / "python"


def available() -> bool:
    return neps_python().is_file()


def job_of(table: Table, runs: list[tuple[int, dict[Cell, dict[int, int | None]]]], *, budget: float, eta: int,
           start_lr: float) -> dict[str, Any]:
    """The child's job: per run (seed, rows drawn per cell) every cell's cost and loss at each of its
    evaluation points, for the LRs the table holds; cells in the lattice's row-major order."""
    lat = table.lattice
    out_runs = []
    for seed, rows in runs:
        cells = []
        for cell in lat.cells():
            fracs = cell_fracs(table, cell)
            cost, loss = {}, {}
            for i, row in rows[cell].items():
                cost[str(i)] = [table.cost(cell, i, f) for f in fracs]
                seen = [table.loss_at(cell, i, f, row) for f in fracs]
                loss[str(i)] = [v if v is not None and math.isfinite(v) else None for v in seen]
            cells.append({"m": cell.m, "e": cell.e, "cost": cost, "loss": loss})
        out_runs.append({"seed": seed, "cells": cells})
    return {"eta": eta, "budget": budget, "start_lr": start_lr, "lrs": list(lat.lrs), "runs": out_runs}


def run_child(job: dict[str, Any], *, python: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run PriorBand on `job` in NePS's environment; its parsed answer."""
    py = python or neps_python()
    if not py.is_file():
        raise NepsUnavailable(f"expected NePS's environment at {py} for the PriorBand peers; build it with "
                              f"`make neps-env` or point {ENV} at a Python with neural-pipeline-search",
                              key="--peers")
    done = subprocess.run([str(py), str(CHILD)], input=json.dumps(job), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"PriorBand (NePS, {py}) failed with exit code {done.returncode}: {last}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def replay_priorband(table: Table, runs: list[tuple[int, dict[Cell, dict[int, int | None]]]], *, budget: float,
                     eta: int, start_lr: float) -> list[dict[str, Any]]:
    """One replay per (seed, rows) run, in the shape `peers.replay_peer` returns."""
    answer = run_child(job_of(table, runs, budget=budget, eta=eta, start_lr=start_lr))
    lat = table.lattice
    cells = {(c.m, c.e): c for c in lat.cells()}
    out = []
    for run in answer["runs"]:
        rep: dict[str, Any] = {"trials": 0, "flops": 0.0, "full_trials": 0.0, "makespan": 0.0, "missing": 0,
                               "settled": {}, "neps": answer["neps"]}
        for got in run["cells"]:
            cell = cells[(got["m"], got["e"])]
            fracs = cell_fracs(table, cell)
            meter = _Meter(table, cell)
            for n, (i, k, k0, _) in enumerate(got["evals"]):
                if (cell, i) not in table.runs:
                    rep["missing"] += 1
                    continue
                rep["makespan"] += meter.train(n, i, fracs[k0 - 1] if k0 else 0.0, fracs[k - 1])
            rep["trials"] += sum(1 for e in got["evals"] if e[2] == 0)  # a promotion continues its trial
            rep["flops"] += meter.flops
            rep["full_trials"] += meter.cost
            rep["settled"][cell] = got["settled"]
        out.append(rep)
    return out
