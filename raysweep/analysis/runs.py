"""The runs a study is analysed from, and the cells they settle: the one input of every fit.

A `Runs` holds finished trials (one row per run: model, size, budget, LR, seed, loss, cost), read
from a results CSV (`raysweep table`'s columns) or from rows `raysweep.results.mlflow_rows.read_trials` gave.
`Runs.cells()` reduces them to one `CellBest` per (model, epoch budget): the LR whose loss,
averaged over seeds, is lowest, as the paper tuned each cell. Every fit starts from those cells.

Pure numpy (no Ray, MLflow or Optuna): the analysis is tested on planted data alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np

from raysweep.core import cost
from raysweep.core.errors import SpecError
from raysweep.core.records import cell_name
from raysweep.results.cells import loss as cell_loss
from raysweep.results.cells import number
from raysweep.results.csv_rows import read_rows
from raysweep.results.rows import ANALYSIS_REQUIRED, TrialRow, optional, status_of

# The TPU-v4 calibration is raysweep.core.cost's (../shared/PAPER.md "Compute calibration")
TPU_V4_PEAK_FLOPS_PER_CORE: Final = cost.TPU_V4.peak_flops_per_core
TPU_V4_UTILISATION: Final = cost.UTILISATION


class ComputeAxis(str, Enum):
    """What a run's cost is counted in."""

    FLOPS = "flops"  # training FLOPs, measured from the built model x examples seen
    CORE_HOURS = "core_hours"  # measured device time (depends on the machine that ran the sweep)
    TPU_V4_CORE_HOURS = "tpu_v4_core_hours"  # FLOPs / (137.5e12 per core x 0.36) / 3600

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {
            ComputeAxis.FLOPS: "training FLOPs",
            ComputeAxis.CORE_HOURS: "measured core-hours",
            ComputeAxis.TPU_V4_CORE_HOURS: (f"TPU-v4-equivalent core-hours (FLOPs / ({TPU_V4_PEAK_FLOPS_PER_CORE:.4g} "
                                            f"FLOP/s per core x utilisation {TPU_V4_UTILISATION}))"),
        }[self]

    @property
    def short(self) -> str:
        return {ComputeAxis.FLOPS: "FLOPs", ComputeAxis.CORE_HOURS: "core-hours",
                ComputeAxis.TPU_V4_CORE_HOURS: "TPU-v4 core-hours"}[self]


def cost_of(run: TrialRow, axis: ComputeAxis) -> float | None:
    """A run's cost on `axis` (None where it was not recorded)."""
    if axis is ComputeAxis.FLOPS:
        return run.flops
    if axis is ComputeAxis.TPU_V4_CORE_HOURS:
        return None if run.flops is None else cost.core_hours(run.flops)
    return run.core_hours


@dataclass(frozen=True)
class CellBest:
    """One (model, epoch budget) cell at its best learning rate."""

    model: str
    params: int  # N
    epochs: float  # D, in passes over the training split
    best_lr: float
    loss: float  # mean over seeds at best_lr
    loss_se: float  # its standard error over seeds (nan with one seed)
    seeds: int
    compute: float  # cost of one run of the cell on the chosen axis (mean over its runs)
    lr_at_grid_edge: bool  # the best LR is the smallest or largest LR the cell tried (normal for a monotone sweep)
    # the best LR is an end of the LR grid itself, so the optimum may lie beyond it: "high" (no grid
    # point above it: lr.high bounds it), "low" (none below: lr.low), "" (inside the grid)
    lr_at_grid_bound: str = ""

    @property
    def name(self) -> str:
        return cell_name(self.model, self.epochs)


@dataclass(frozen=True)
class Runs:
    """The finished runs of one study (one experiment, however many sessions, or one table)."""

    name: str
    runs: tuple[TrialRow, ...]  # every one with model_params and seed
    source: str  # where they came from, for the report

    def __post_init__(self) -> None:
        assert self.runs, "a study needs runs; loaders raise SpecError before this"

    @property
    def models(self) -> tuple[str, ...]:
        """Rungs in ascending size."""
        sizes = {r.model: r.model_params or 0 for r in self.runs}
        return tuple(sorted(sizes, key=lambda m: (sizes[m], m)))

    @property
    def rung_params(self) -> dict[str, int]:
        return {m: next(r.model_params or 0 for r in self.runs if r.model == m) for m in self.models}

    @property
    def epochs(self) -> tuple[float, ...]:
        return tuple(sorted({r.epochs for r in self.runs}))

    @property
    def lrs(self) -> tuple[float, ...]:
        return tuple(sorted({r.lr for r in self.runs}))

    @property
    def lr_grid_recorded(self) -> bool:
        """Whether every run records its spec's LR grid (lr.low, lr.high, lr.factor): read from MLflow,
        not from a table, where the grid's ends are taken as the smallest and largest LR of any run."""
        return all(r.lr_grid for r in self.runs)

    def grid_bound(self, model: str, epochs: float, lr: float) -> str:
        """"high" or "low" when `lr` is that end of the cell's LR grid (no grid point beyond it), else ""."""
        grids = {r.lr_grid for r in self.runs if r.model == model and r.epochs == epochs and r.lr_grid}
        if grids:
            low, high, factor = max(grids, key=lambda g: (g[1], -g[0]))  # the widest, where sessions differ
            if lr * factor > high * (1 + 1e-6):
                return "high"
            return "low" if lr / factor < low * (1 - 1e-6) else ""
        lrs = self.lrs
        return "high" if lr >= lrs[-1] else "low" if lr <= lrs[0] else ""

    def has_seeds(self) -> bool:
        """Whether every cell ran some LR with two or more seeds (the best, typically, run again):
        then seeds can be resampled.

        Where only some cells did (a few run again with new seeds), drawing seeds would hold every
        other cell fixed and narrow each interval to the noise of those few, so cells are drawn instead.
        """
        seeded: dict[tuple[str, float], bool] = {}
        for (model, epochs, _), rs in self.groups().items():
            seeded[(model, epochs)] = seeded.get((model, epochs), False) or len(rs) >= 2
        return all(seeded.values())

    def groups(self) -> dict[tuple[str, float, float], list[TrialRow]]:
        out: dict[tuple[str, float, float], list[TrialRow]] = {}
        for r in self.runs:
            out.setdefault((r.model, r.epochs, r.lr), []).append(r)
        return out

    def has_axis(self, axis: ComputeAxis) -> bool:
        """Whether every run that finished with a finite loss has a positive cost on `axis`."""
        return all((c := cost_of(r, axis)) is not None and c > 0 for r in self.runs if math.isfinite(r.val_loss))

    def cells(self, axis: ComputeAxis = ComputeAxis.FLOPS, *,
              losses: Mapping[tuple[str, float, float], np.ndarray] | None = None) -> list[CellBest]:
        """One `CellBest` per cell with a finite loss, ordered by (size, budget).

        `losses` replaces the per-seed losses of each (model, budget, LR) group: the bootstrap
        passes resampled seeds here. Ties go to the larger LR, as the searchers break them.
        """
        groups = self.groups()
        by_cell: dict[tuple[str, float], list[tuple[float, np.ndarray]]] = {}
        for (model, epochs, lr), rs in groups.items():
            vals = losses[(model, epochs, lr)] if losses is not None else np.array([r.val_loss for r in rs])
            by_cell.setdefault((model, epochs), []).append((lr, vals))
        params = self.rung_params
        costs: dict[tuple[str, float], list[float]] = {}
        for r in self.runs:
            c = cost_of(r, axis)
            # a diverged run stopped early: only runs that finished their budget say what it costs
            if c is not None and c > 0 and math.isfinite(r.val_loss):
                costs.setdefault((r.model, r.epochs), []).append(c)
        out = []
        for (model, epochs), entries in by_cell.items():
            entries.sort(key=lambda t: t[0])
            means = [float(np.mean(v)) if np.all(np.isfinite(v)) else math.inf for _, v in entries]
            finite = [i for i, m in enumerate(means) if math.isfinite(m)]
            if not finite:
                continue  # every LR diverged: the cell settles nothing
            best = min(finite, key=lambda i: (means[i], -entries[i][0]))
            vals = entries[best][1]
            known = costs.get((model, epochs), [])
            out.append(CellBest(
                model=model, params=params[model], epochs=epochs, best_lr=entries[best][0], loss=means[best],
                loss_se=float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) >= 2 else math.nan,
                seeds=len(vals), compute=float(np.mean(known)) if known else math.nan,
                lr_at_grid_edge=best in (0, len(entries) - 1),
                lr_at_grid_bound=self.grid_bound(model, epochs, entries[best][0]),
            ))
        out.sort(key=lambda c: (c.params, c.model, c.epochs))
        return out


# Loading ------------------------------------------------------------------------------------------

def runs_from_rows(rows: Iterable[TrialRow], *, name: str, source: str) -> Runs:
    """Runs from `raysweep.results.mlflow_rows.read_trials` rows: every one with a size and a seed,
    a non-finite loss read as diverged, a cost of 0 as not recorded."""
    runs = []
    for row in rows:
        loss = row.val_loss if math.isfinite(row.val_loss) else math.inf
        hours = row.core_hours
        runs.append(dataclasses.replace(row, model_params=int(row.model_params or 0), seed=row.seed or "0",
                                        val_loss=loss, status=status_of(loss), flops=float(row.flops or 0.0),
                                        core_hours=float(hours) if hours and hours > 0 else None))
    if not runs:
        raise SpecError(f"expected finished trials, got none in {source}", key="--experiment")
    _check_sizes(runs, source, key="model_params")
    return Runs(name=name, runs=tuple(runs), source=source)


def load_csv(path: str, *, name: str | None = None) -> Runs:
    """Read a results table; every problem is a `SpecError` naming the file, the line and the column."""
    _, records = read_rows(path, required=ANALYSIS_REQUIRED, optional=optional(ANALYSIS_REQUIRED))
    runs = []
    for rec, line in records:
        where = f"line {line}"
        if not rec.get("model"):
            raise SpecError("expected a model name, got an empty value", file=path, key=f"{where}, column model")
        hours = rec.get("core_hours", "")
        loss = cell_loss(rec["val_loss"], file=path, key=f"{where}, column val_loss")
        runs.append(TrialRow(
            model=rec["model"],
            model_params=int(_number(rec["model_params"], path, where, "model_params", positive=True)),
            epochs=_number(rec["epochs"], path, where, "epochs", positive=True),
            lr=_number(rec["lr"], path, where, "lr", positive=True),
            seed=rec.get("seed") or "0",
            val_loss=loss,
            status=status_of(loss),
            flops=_number(rec["flops"], path, where, "flops", positive=True),
            core_hours=_number(hours, path, where, "core_hours", positive=True) if hours else None,
        ))
    _check_sizes(runs, path, key="column model_params")
    stem = path.rsplit("/", 1)[-1].removesuffix(".csv")
    return Runs(name=name or stem, runs=tuple(runs), source=path)


def _check_sizes(runs: Sequence[TrialRow], source: str, *, key: str) -> None:
    sizes: dict[str, set[int]] = {}
    for r in runs:
        sizes.setdefault(r.model, set()).add(r.model_params or 0)
    odd = {m: sorted(s) for m, s in sizes.items() if len(s) > 1}
    if odd:
        raise SpecError(f"expected one parameter count per model, got {odd}", file=source, key=key)


def _number(text: str, path: str, where: str, column: str, *, positive: bool = False) -> float:
    return number(text, file=path, key=f"{where}, column {column}", positive=positive)

